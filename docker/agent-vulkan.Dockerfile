# syntax=docker/dockerfile:1.7
# llamafleet-agent with Vulkan offload (cargo feature `vulkan`) for AMD and Intel GPUs,
# non-root, built as CI compiles it: Debian 12's glslc, glslang and SPIR-V headers, and the
# Vulkan headers of Debian 13 laid out as a Vulkan SDK by scripts/vulkan-sdk.sh.
# Build from the repository root (no GPU needed to build):
#   docker build -f docker/agent-vulkan.Dockerfile -t ghcr.io/llamafleet/agent:0.1.0-vulkan .
# Not built yet: the machines of this repository have no container engine (docs/images.md,
# "Not verified here").
# Nodes need the GPU's kernel driver (amdgpu, i915) and its vendor's device plugin, which
# mounts the render node (/dev/dri/renderD*); the user-space driver is Mesa's, in this image:
# RADV for AMD, ANV for Intel.
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm
# Mesa of the runtime image: Debian 13's Mesa 25.0 drives GPUs that Debian 12's 22.3 does
# not know (RDNA 4, Intel Arc B-series) and has RADV's cooperative-matrix support, which
# ggml-vulkan's matrix multiplications use. The binary built on Debian 12 runs on 13 as is.
ARG RUNTIME_DEBIAN=trixie

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# libvulkan1: the loader to link; glslc, glslang-tools, spirv-headers: ggml's shader build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev \
      glslc glslang-tools spirv-headers libvulkan1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Debian 12's Vulkan headers (1.3.239) are too old for ggml-vulkan (it uses
# VK_EXT_layer_settings): vulkan-sdk.sh fetches Debian 13's libvulkan-dev (1.4.309) with apt,
# checked against the suite's signed Release file, and lays it out as a Vulkan SDK. CMake's
# FindVulkan takes Vulkan_INCLUDE_DIR from $VULKAN_SDK/include (llama-cpp-sys-2 forwards no
# Vulkan_* setting to CMake on Linux, so VULKAN_SDK is the way in).
ENV LLAMAFLEET_CACHE=/cache CARGO_TARGET_DIR=/cache/target-vulkan
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/cache \
    export VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)" \
 && cargo build --release --locked -p llamafleet-agent --features vulkan \
 && install -D "$CARGO_TARGET_DIR"/release/llamafleet-agent /out/llamafleet-agent \
 && /out/llamafleet-agent --version

FROM debian:${RUNTIME_DEBIAN}-slim
# libvulkan1: the Vulkan loader; mesa-vulkan-drivers: RADV (AMD) and ANV (Intel), and lavapipe,
# a CPU device that ggml-vulkan skips unless GGML_VK_VISIBLE_DEVICES names it; libgomp1:
# llama.cpp's OpenMP threads; ca-certificates: model downloads over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers libgomp1 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 llamafleet \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin llamafleet \
 && install -d -o 65532 -g 65532 /var/lib/llamafleet/models
COPY --from=build /out/llamafleet-agent /usr/local/bin/llamafleet-agent
# Smoke: the runtime image has every library the binary needs (the loader opens no GPU here).
RUN ["/usr/local/bin/llamafleet-agent", "--version"]
# The operator runs Vulkan pods as this user by number (runAsUser/runAsGroup 65532), so that a
# runtime with device_ownership_from_security_context hands it the render node.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llamafleet-agent"]
CMD ["--help"]
