#!/usr/bin/env bash
# Keeps a long-lived Cargo target dir (CI's, outside the clone) from filling the disk. Every
# change of a crate's dependencies or flags gives its test executables a new hash, so the old
# ones (often 100-300 MB each, llama.cpp linked in) stay behind forever; so do incremental
# caches of crate versions no longer built. Removed here: executables in deps/ that a newer one
# of the same name replaced, and incremental dirs untouched for two days. Cargo rebuilds
# anything removed by mistake, so nothing here can break a build, only slow one.
#
#   bash scripts/prune-target.sh [TARGET_DIR]   # default: $CARGO_TARGET_DIR, else ./target
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-${CARGO_TARGET_DIR:-target}}"
[[ -d "$target" ]] || exit 0

before=$(du -sm "$target" | cut -f1)
for profile_dir in "$target"/*/; do
  deps="${profile_dir}deps"
  if [[ -d "$deps" ]]; then
    # Newest first; a name seen before (crate name without its -<16 hex> suffix) is superseded.
    find "$deps" -maxdepth 1 -type f -executable -regextype posix-extended \
      -regex '.*-[0-9a-f]{16}' -printf '%T@ %p\n' |
      sort -rn |
      awk '{ name = $2; sub(/.*\//, "", name); sub(/-[0-9a-f]+$/, "", name);
             if (seen[name]++) print $2 }' |
      xargs -r rm -f
  fi
  incremental="${profile_dir}incremental"
  if [[ -d "$incremental" ]]; then
    find "$incremental" -mindepth 1 -maxdepth 1 -type d -mtime +2 -exec rm -rf {} +
  fi
done
after=$(du -sm "$target" | cut -f1)
echo "prune-target: $target ${before} MB -> ${after} MB"
