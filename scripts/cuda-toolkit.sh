#!/usr/bin/env bash
# Install the CUDA 13 toolkit the `cuda` build needs from NVIDIA's PyPI wheels (Debian has no
# CUDA toolkit), lay it out as CMake's FindCUDAToolkit and nvcc expect, and print its root.
# Idempotent: a complete toolkit in the cache is reused at once.
#
#   CUDA_PATH="$(bash scripts/cuda-toolkit.sh)"
#
# Only stdout carries the path; progress goes to stderr.
set -euo pipefail

# CUDA 13.0: the oldest 13.x, so the build runs on every driver that runs CUDA 13 (580 or
# newer); the -cu12 wheels carry no nvcc front end, so CUDA 12 cannot be built from PyPI.
CUDA_VERSION="13.0"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88    # nvcc, cudafe++, fatbinary, nvlink, ptxas
  nvidia-nvvm==13.0.88         # cicc and libdevice
  nvidia-cuda-crt==13.0.88     # the crt/ headers nvcc includes
  nvidia-cuda-runtime==13.0.96 # cudart (shared and static) and its headers
  nvidia-cuda-cccl==13.0.85    # CUB, Thrust, libcu++ (ggml-cuda includes CUB)
  nvidia-cublas==13.0.2.14     # cuBLAS and cuBLASLt (shared only: no static cuBLAS on PyPI)
)
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
DEST="$CACHE/cuda-$CUDA_VERSION"
ROOT="$DEST/nvidia/cu13"
PIP="${PIP:-python3 -m pip}"

log() { echo "cuda-toolkit: $*" >&2; }

if [[ -f "$DEST/.complete" ]] && [[ "$(cat "$DEST/.complete")" == "${WHEELS[*]}" ]]; then
  echo "$ROOT"
  exit 0
fi

WORK="$(mktemp -d "$CACHE/.cuda-toolkit.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "installing ${#WHEELS[@]} wheels (about 500 MB, once) into $DEST"
$PIP download --quiet --no-deps --only-binary=:all: --dest "$CACHE/cuda-wheels" \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
  --python-version 3.11 "${WHEELS[@]}" >&2
wheel_files=()
for spec in "${WHEELS[@]}"; do
  name="${spec%%==*}"
  version="${spec##*==}"
  wheel_files+=("$CACHE/cuda-wheels/${name//-/_}-$version"-*.whl)
done
$PIP install --quiet --no-deps --no-compile --disable-pip-version-check \
  --root-user-action=ignore --target "$WORK/site" "${wheel_files[@]}" >&2
root="$WORK/site/nvidia/cu13"

# The wheels carry only versioned sonames; the linker and FindCUDAToolkit look for the
# unversioned names, and for lib64 beside lib.
for lib in cudart cublas cublasLt; do
  ln -sfn "lib$lib.so.13" "$root/lib/lib$lib.so"
done
ln -sfn lib "$root/lib64"

# A link-time stub of the driver library (libcuda.so.1), as a toolkit ships in lib/stubs: the
# wheels have none, and ggml-cuda calls the driver API. Every CUresult function cuda.h declares
# (after its _v2 renames) becomes an empty export; at run time the node's driver provides them.
mkdir -p "$root/lib/stubs"
echo '#include <cuda.h>' | cc -E -P -I"$root/include" -x c - \
  | grep -oE '^(extern )?CUresult +(CUDAAPI +)?cu[A-Za-z0-9_]+ *\(' \
  | grep -oE 'cu[A-Za-z0-9_]+' | sort -u | sed 's/.*/void &(void) {}/' >"$WORK/cuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" "$WORK/cuda-stub.c"

"$root/bin/nvcc" --version >&2
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$WORK/site/nvidia" "$DEST/nvidia"
echo "${WHEELS[*]}" >"$DEST/.complete"
echo "$ROOT"
