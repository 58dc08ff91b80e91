# syntax=docker/dockerfile:1.7
# llamafleet-agent, CPU build (llama.cpp with OpenMP), on Debian slim, non-root.
# Build from the repository root:
#   docker build -f docker/agent.Dockerfile -t ghcr.io/llamafleet/agent:0.1.0 .
# The GPU build is docker/agent-cuda.Dockerfile.
# Without a container engine, `bash scripts/build-images.sh OUT_DIR` builds the same image:
# it carries out the runtime stage below instruction by instruction, with the binary built on
# this machine, and refuses what it does not understand (tests/e2e/images.rs).
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# llama-cpp-sys-2 builds llama.cpp with GGML_NATIVE=OFF unless RUSTFLAGS asks for
# target-cpu=native: the image runs on whatever CPU the node has, not the build machine's.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p llamafleet-agent \
 && install -D target/release/llamafleet-agent /out/llamafleet-agent \
 && /out/llamafleet-agent --version

FROM debian:${DEBIAN}-slim
# libgomp1: llama.cpp's OpenMP threads; ca-certificates: model downloads over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 llamafleet \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin llamafleet \
 && install -d -o 65532 -g 65532 /var/lib/llamafleet/models
COPY --from=build /out/llamafleet-agent /usr/local/bin/llamafleet-agent
# Smoke: the runtime image has every library the binary needs.
RUN ["/usr/local/bin/llamafleet-agent", "--version"]
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llamafleet-agent"]
CMD ["--help"]
