# syntax=docker/dockerfile:1.7
# llamafleet-agent with CUDA offload (cargo feature `cuda`), non-root, built exactly as CI
# compiles it: scripts/cuda-build.sh with the CUDA 13.0 toolkit from NVIDIA's PyPI wheels.
# Build from the repository root (no GPU needed to build):
#   docker build -f docker/agent-cuda.Dockerfile -t ghcr.io/llamafleet/agent:0.1.0-cuda13 .
# Nodes need NVIDIA driver 580 or newer (CUDA 13) and the container toolkit (or the GPU
# operator), which mounts the driver's libcuda.so.1 and libnvidia-ml.so.1 into the container.
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm
# The CUDA 13.0 runtime image matching the toolkit wheels scripts/cuda-toolkit.sh pins
# (13.0 Update 2: nvcc 13.0.88, cudart 13.0.96).
ARG CUDA_VERSION=13.0.2
ARG UBUNTU=ubuntu24.04

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/pip
WORKDIR /src
COPY . .
# Compute capabilities with machine code: Turing as PTX (JIT on anything newer without its own
# code), Ampere (A100, A10/RTX 30), Ada (L4, L40, RTX 40), Hopper (H100, H200), Blackwell.
# A check compiles one (90-real); this list is why an image build takes far longer than CI's.
ENV LLAMAFLEET_CUDA_ARCHS="75-virtual;80-real;86-real;89-real;90-real;120a-real" \
    LLAMAFLEET_CACHE=/cache PIP="/opt/pip/bin/python -m pip" CARGO_TARGET_DIR=/cache/target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/cache \
    bash scripts/cuda-build.sh \
 && install -d /out \
 && cp "$CARGO_TARGET_DIR"/release/llamafleet-agent "$CARGO_TARGET_DIR"/release/lib*.so /out/ \
 && install -D "$(bash scripts/cuda-toolkit.sh)/lib/stubs/libcuda.so" /stubs/libcuda.so.1

# The runtime image ships the shared CUDA runtime and cuBLAS the build links (no static cuBLAS
# is published on PyPI, so llama.cpp and ggml are shared libraries beside the binary, found
# through its $ORIGIN run path).
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# libgomp1: llama.cpp's OpenMP threads; ca-certificates: model downloads over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 llamafleet \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin llamafleet \
 && install -d -o 65532 -g 65532 /var/lib/llamafleet/models
COPY --from=build /out/ /opt/llamafleet/
RUN ln -s /opt/llamafleet/llamafleet-agent /usr/local/bin/llamafleet-agent
# Smoke: no driver here, so resolve libcuda.so.1 against the toolkit's link stub for --version
# only; every other library must come from this image.
COPY --from=build /stubs/ /tmp/stubs/
RUN LD_LIBRARY_PATH=/tmp/stubs llamafleet-agent --version && rm -rf /tmp/stubs
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llamafleet-agent"]
CMD ["--help"]
