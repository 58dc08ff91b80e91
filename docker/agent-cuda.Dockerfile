# syntax=docker/dockerfile:1.7
# llamafleet-agent with CUDA offload (cargo feature `cuda`), non-root.
# Build from the repository root (no GPU needed to build):
#   docker build -f docker/agent-cuda.Dockerfile -t ghcr.io/llamafleet/agent:0.1.0-cuda12 .
# Nodes need the NVIDIA driver and container toolkit (or the GPU operator); the driver's
# libcuda.so.1 is mounted into the container at run time.
ARG CUDA_VERSION=12.6.3
ARG UBUNTU=ubuntu24.04
ARG RUST_VERSION=1.95

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG RUST_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates build-essential cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
WORKDIR /src
COPY . .
# Compute capabilities to compile kernels for (CMake reads CUDAARCHS): Turing (T4) through
# Hopper (H100/H200). llama-cpp-sys-2 links cudart and cuBLAS statically; only the driver's
# libcuda.so.1 comes from the node, so the runtime stage is the small `base` image.
ENV CUDAARCHS="75;80;86;89;90"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p llamafleet-agent --features cuda \
 && install -D target/release/llamafleet-agent /out/llamafleet-agent
# Smoke: no driver here, so resolve libcuda.so.1 against the toolkit's stub for --version only.
RUN mkdir -p /tmp/stubs && ln -s /usr/local/cuda/lib64/stubs/libcuda.so /tmp/stubs/libcuda.so.1 \
 && LD_LIBRARY_PATH=/tmp/stubs:$LD_LIBRARY_PATH /out/llamafleet-agent --version

FROM nvidia/cuda:${CUDA_VERSION}-base-${UBUNTU}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 llamafleet \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin llamafleet \
 && install -d -o 65532 -g 65532 /var/lib/llamafleet/models
COPY --from=build /out/llamafleet-agent /usr/local/bin/llamafleet-agent
# Smoke with the stub again: the runtime image must hold every other library (OpenMP, libstdc++).
COPY --from=build /usr/local/cuda/lib64/stubs/libcuda.so /tmp/stubs/libcuda.so.1
RUN LD_LIBRARY_PATH=/tmp/stubs:$LD_LIBRARY_PATH /usr/local/bin/llamafleet-agent --version \
 && rm -rf /tmp/stubs
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llamafleet-agent"]
CMD ["--help"]
