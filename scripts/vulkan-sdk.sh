#!/usr/bin/env bash
# Lay out what the `vulkan` build needs as a Vulkan SDK folder (the shape CMake's FindVulkan and
# llama-cpp-sys-2 read from VULKAN_SDK) and print its path. Idempotent: reused at once.
#
#   VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)"
#
# Debian 12's Vulkan headers (1.3.239) are too old for ggml-vulkan, which uses
# VK_EXT_layer_settings: the headers come from Debian 13's libvulkan-dev, fetched with apt from
# the same mirror into a private apt state (the system's sources are not touched) and
# checked by apt against the suite's signed Release file. The loader (libvulkan1), glslc and
# SPIR-V headers are Debian 12's (scripts/setup.sh vulkan installs them).
set -euo pipefail

HEADERS_SUITE=trixie
HEADERS_VERSION="1.4.309.0-1"
CACHE="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}"
SDK="$CACHE/vulkan-sdk-$HEADERS_VERSION"
LOADER=/usr/lib/x86_64-linux-gnu/libvulkan.so.1

log() { echo "vulkan-sdk: $*" >&2; }

if [[ -f "$SDK/.complete" ]]; then
  echo "$SDK"
  exit 0
fi
for need in "$LOADER" /usr/bin/glslc; do
  [[ -e "$need" ]] || { log "$need is missing: run bash scripts/setup.sh vulkan"; exit 1; }
done

mirror="$(grep -hoE '^(URIs: |deb )\S*https?://[^ ]*debian/?' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -oE 'https?://\S+' | head -1 || true)"
# (`|| true`: a missing sources.list makes grep exit 2, which pipefail would make fatal.)
mirror="${mirror:-http://deb.debian.org/debian}"
WORK="$(mktemp -d "$CACHE/.vulkan-sdk.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $HEADERS_SUITE main" \
  >"$WORK/sources.list"
apt_private=(-o "Dir::State::Lists=$WORK/lists" -o "Dir::Etc::SourceList=$WORK/sources.list"
  -o Dir::Etc::SourceParts=/nonexistent -o "Dir::Cache::archives=$WORK/archives"
  -o APT::Sandbox::User=root)
log "Vulkan headers $HEADERS_VERSION from $mirror ($HEADERS_SUITE), once"
apt-get "${apt_private[@]}" update -qq >&2
(cd "$WORK" && apt-get "${apt_private[@]}" download "libvulkan-dev=$HEADERS_VERSION" >&2)
dpkg-deb -x "$WORK"/libvulkan-dev_*.deb "$WORK/root"

mkdir -p "$WORK/sdk/lib" "$WORK/sdk/bin"
cp -a "$WORK/root/usr/include" "$WORK/sdk/include"
ln -s "$LOADER" "$WORK/sdk/lib/libvulkan.so"
ln -s /usr/bin/glslc "$WORK/sdk/bin/glslc"
rm -rf "$SDK"
mv "$WORK/sdk" "$SDK"
touch "$SDK/.complete"
echo "$SDK"
