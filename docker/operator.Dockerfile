# syntax=docker/dockerfile:1.7
# llamafleet-operator: a static-TLS (rustls) Rust binary on distroless, non-root.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/llamafleet/operator:0.1.0 .
# Without a container engine, `bash scripts/build-images.sh OUT_DIR` builds the same image:
# it carries out the runtime stage below instruction by instruction, with the binary built on
# this machine, and refuses what it does not understand (tests/e2e/images.rs).
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
COPY . .
# The operator never links llama.cpp; its allocator (jemalloc, C) builds with the image's gcc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile operator-release --locked -p llamafleet-operator \
 && install -D target/operator-release/llamafleet-operator /out/llamafleet-operator \
 && /out/llamafleet-operator --version

# glibc + libgcc, no shell, no package manager; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llamafleet-operator /usr/local/bin/llamafleet-operator
# Smoke: the runtime image has every library the binary needs.
RUN ["/usr/local/bin/llamafleet-operator", "--version"]
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llamafleet-operator"]
