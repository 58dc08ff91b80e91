#!/usr/bin/env bash
# Build the agent with CUDA offload (cargo feature `cuda`) on a machine without a GPU, with
# the CUDA 13 toolkit from PyPI (scripts/cuda-toolkit.sh). Extra arguments go to cargo, e.g.
#
#   bash scripts/cuda-build.sh                      # target-cuda/release/llamafleet-agent
#   bash scripts/cuda-build.sh --tests              # also the test binaries
#   bash scripts/cuda-build.sh test --no-run        # `cargo test` instead (its profile: below)
#
# LLAMAFLEET_CARGO_PROFILE: the cargo profile (default release, what images and bench/gpu.sh
# run); scripts/gpu-checks.sh compiles its check with `test`, the profile of the suite's tests,
# so that the Vulkan and CUDA checks share one unoptimised build of the Rust dependencies.
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
# LLAMAFLEET_CUDA_CHECK=1: a build that checks that every kernel and the host code compile and
# link (scripts/gpu-checks.sh), never one that is run: device code at -O0 (cicc and ptxas) and
# host code unoptimised, without debug info, which with LLAMAFLEET_CUDA_ARCHS=90-virtual (PTX
# only: no ptxas) compiles ggml's CUDA files in a third of the time (raw figures in
# docs/benchmarks/raw/ci-times.txt). Like the compute capabilities, it takes effect when
# llama.cpp's CMake build is configured (a cold target dir, or a new llama-cpp-sys-2): the
# crate's build script does not rerun when only the toolchain file changes, so a cached build
# keeps its flags.
CHECK="${LLAMAFLEET_CUDA_CHECK:-0}"
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"

CUDA_PATH="$(bash scripts/cuda-toolkit.sh)"
export CUDA_PATH CUDAToolkit_ROOT="$CUDA_PATH" PATH="$CUDA_PATH/bin:$PATH"

# llama-cpp-sys-2 hands CMake no CUDA settings; its cmake crate does pass a toolchain file,
# which is the one way to set CMAKE_CUDA_ARCHITECTURES before ggml picks its own list.
toolchain="$CACHE/cuda-toolchain-${CUDA_ARCHS//[^0-9a-z]/_}-check_$CHECK.cmake"
device_flags="" config_flags=""
if [[ "$CHECK" == 1 ]]; then
  device_flags="-Xcicc -O0 -Xptxas -O0"
  # In place of CMake's per-build-type CUDA flags (-O3, or -O2 -g), which reach the host
  # compiler: unoptimised host code.
  config_flags="$(printf 'set(CMAKE_CUDA_FLAGS_%s "-DNDEBUG" CACHE STRING "" FORCE)\n' RELEASE RELWITHDEBINFO)"
fi
cat >"$toolchain.tmp" <<EOF
set(CMAKE_CUDA_COMPILER "$CUDA_PATH/bin/nvcc")
set(CMAKE_CUDA_ARCHITECTURES "$CUDA_ARCHS")
# Forced: CMake keeps the flags of a build dir's first configure in its cache.
set(CMAKE_CUDA_FLAGS "$device_flags" CACHE STRING "" FORCE)
$config_flags
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

cargo_profile="${LLAMAFLEET_CARGO_PROFILE:-release}"
case "$cargo_profile" in # cargo's output folder of each profile
  dev | test) profile_dir=debug ;;
  bench) profile_dir=release ;;
  *) profile_dir="$cargo_profile" ;;
esac
command=build
if [[ "${1:-}" == test ]]; then
  command=test
  shift
fi

echo "cuda-build: CUDA $("$CUDA_PATH/bin/nvcc" --version | grep -o 'release [0-9.]*'), kernels for $CUDA_ARCHS${device_flags:+ (a check: $device_flags, host code unoptimised)}, cargo $command --profile $cargo_profile, into $CARGO_TARGET_DIR" >&2
cargo "$command" --profile "$cargo_profile" --locked -p llamafleet-agent --features cuda "$@"

# llama-cpp-sys-2 links only the libraries' unversioned names beside the binary (symlinks to
# sonames it does not copy): copy the libraries themselves, so the binary runs on its own.
lib_dir="$(find "$CARGO_TARGET_DIR/$profile_dir/build" -path '*/llama-cpp-sys-2-*/out/lib/libggml-cuda.so' \
  -printf '%T@ %h\n' | sort -rn | head -1 | cut -d' ' -f2-)"
cp -af "$lib_dir"/lib*.so* "$CARGO_TARGET_DIR/$profile_dir/"
