#!/usr/bin/env bash
# Build the agent with CUDA offload (cargo feature `cuda`) on a machine without a GPU, with
# the CUDA 13 toolkit from PyPI (scripts/cuda-toolkit.sh). Extra arguments go to cargo, e.g.
#
#   bash scripts/cuda-build.sh                      # target-cuda/release/llamafleet-agent
#   bash scripts/cuda-build.sh --tests              # also the test binaries
#
# Linking: NVIDIA publishes no static cuBLAS on PyPI, so llama.cpp and ggml are built as shared
# libraries (llama-cpp-sys-2's LLAMA_BUILD_SHARED_LIBS) that load the node's libcudart.so.13
# and libcublas.so.13 (the CUDA runtime image ships them) and the driver's libcuda.so.1. The
# libraries are placed beside the binary, which finds them through its $ORIGIN run path
# (agent/build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

# Compute capabilities to compile kernels for. Each one adds minutes to a cold build, so a
# check compiles one: 90 (Hopper: H100, H200). Images pass ggml's own list (see
# docker/agent-cuda.Dockerfile).
CUDA_ARCHS="${LLAMAFLEET_CUDA_ARCHS:-90-real}"
# LLAMAFLEET_CUDA_DEVICE_O0=1: device code compiled without optimisation (cicc and ptxas at
# -O0), for a check that every kernel compiles and links (scripts/gpu-checks.sh); never for a
# binary that is run. Like the compute capabilities, it takes effect when llama.cpp's CMake
# build is configured (a cold target dir, or a new llama-cpp-sys-2): the crate's build script
# does not rerun when only the toolchain file changes, so a cached build keeps its flags.
DEVICE_O0="${LLAMAFLEET_CUDA_DEVICE_O0:-0}"
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"

CUDA_PATH="$(bash scripts/cuda-toolkit.sh)"
export CUDA_PATH CUDAToolkit_ROOT="$CUDA_PATH" PATH="$CUDA_PATH/bin:$PATH"

# llama-cpp-sys-2 hands CMake no CUDA settings; its cmake crate does pass a toolchain file,
# which is the one way to set CMAKE_CUDA_ARCHITECTURES before ggml picks its own list.
toolchain="$CACHE/cuda-toolchain-${CUDA_ARCHS//[^0-9a-z]/_}-o0_$DEVICE_O0.cmake"
device_flags=""
[[ "$DEVICE_O0" != 1 ]] || device_flags="-Xcicc -O0 -Xptxas -O0"
cat >"$toolchain.tmp" <<EOF
set(CMAKE_CUDA_COMPILER "$CUDA_PATH/bin/nvcc")
set(CMAKE_CUDA_ARCHITECTURES "$CUDA_ARCHS")
# Forced: CMake keeps the flags of a build dir's first configure in its cache.
set(CMAKE_CUDA_FLAGS "$device_flags" CACHE STRING "" FORCE)
# Each llama.cpp and ggml library finds the others beside it: ggml loads its CUDA backend,
# which the binary does not link directly.
set(CMAKE_INSTALL_RPATH "\$ORIGIN")
set(CMAKE_BUILD_WITH_INSTALL_RPATH ON)
EOF
mv "$toolchain.tmp" "$toolchain"
export CMAKE_TOOLCHAIN_FILE="$toolchain"
export LLAMA_BUILD_SHARED_LIBS=1
# Its own target dir: scripts/test.sh runs this build beside the suite, and cargo locks a target
# dir for the whole of a build; shared llama/ggml libraries also never mix with the static CPU
# build's there.
export CARGO_TARGET_DIR="${LLAMAFLEET_CUDA_TARGET_DIR:-$CACHE/target-cuda}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

echo "cuda-build: CUDA $("$CUDA_PATH/bin/nvcc" --version | grep -o 'release [0-9.]*'), kernels for $CUDA_ARCHS${device_flags:+ ($device_flags)}, into $CARGO_TARGET_DIR" >&2
cargo build --release --locked -p llamafleet-agent --features cuda "$@"

# llama-cpp-sys-2 links only the libraries' unversioned names beside the binary (symlinks to
# sonames it does not copy): copy the libraries themselves, so release/ runs on its own.
lib_dir="$(find "$CARGO_TARGET_DIR/release/build" -path '*/llama-cpp-sys-2-*/out/lib/libggml-cuda.so' \
  -printf '%T@ %h\n' | sort -rn | head -1 | cut -d' ' -f2-)"
cp -af "$lib_dir"/lib*.so* "$CARGO_TARGET_DIR/release/"
