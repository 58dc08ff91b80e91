# The e2e suite's client pod (tests/e2e/real_node.rs): curl on Debian slim, non-root. Built by
# scripts/build-images.sh like the product's images, named llamafleet.dev/e2e-client:1.
ARG DEBIAN=bookworm
FROM debian:${DEBIAN}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
ENTRYPOINT ["curl"]
