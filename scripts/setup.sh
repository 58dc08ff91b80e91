#!/usr/bin/env bash
# Checks what the project needs on this machine, and installs what is missing when it can.
#
#   bash scripts/setup.sh serve   # building and serving the agent (scripts/serve-local.sh)
#   bash scripts/setup.sh test    # serve's, plus the tools the test suite runs (scripts/test.sh)
#   bash scripts/setup.sh vulkan  # serve's, plus the Vulkan build's and lavapipe (scripts/vulkan-build.sh)
#
# Debian or Ubuntu: packages are checked with one dpkg-query call. Missing ones are installed
# (apt-get update once, then apt-get install) when running as root; otherwise the script stops
# at once, exit 1, with the command to run. Python tools and rustup components install in the
# user's own environment, so they need no root. With everything present it runs no installer
# and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# llama.cpp is built from source by llama-cpp-sys-2: cmake and make drive the build, g++
# compiles it, and bindgen needs libclang (clang, libclang-dev) to generate the bindings.
SERVE_APT=(cmake make g++ clang libclang-dev)
# promtool (Debian's prometheus) checks the agent's /metrics; headless Chromium driven by
# chromedriver tries the agent's chat page.
# The test cluster's real node (tests/cluster/node.sh) runs containers with containerd, runc
# and the CNI plugins, kube-proxy writes iptables rules and conntrack entries; the images it
# runs are built by scripts/build-images.sh with mmdebstrap and umoci, the pause image with a
# static libc (libc6-dev).
TEST_APT=(prometheus chromium chromium-driver
  containerd runc containernetworking-plugins iptables conntrack
  mmdebstrap umoci libc6-dev)
# The Python tools the tests drive (kubernetes-validate, the openai/ollama clients,
# schemathesis), pinned there with `==`.
TEST_PIP_REQUIREMENTS=scripts/requirements-test.txt
# The `vulkan` build compiles ggml's shaders (glslc, glslang, SPIR-V headers) and links the
# Vulkan loader; Mesa's drivers include lavapipe, the software GPU its tests run on.
VULKAN_APT=(glslc glslang-tools spirv-headers libvulkan1 mesa-vulkan-drivers)
# `cargo fmt --check` and `cargo clippy` open the suite.
TEST_RUSTUP=(rustfmt clippy)

log() { echo "setup: $*" >&2; }

usage() {
  echo "usage: bash scripts/setup.sh serve|test|vulkan" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage
profile="$1"
case "$profile" in
  serve) apt_wanted=("${SERVE_APT[@]}") ;;
  test) apt_wanted=("${SERVE_APT[@]}" "${TEST_APT[@]}") ;;
  vulkan) apt_wanted=("${SERVE_APT[@]}" "${VULKAN_APT[@]}") ;;
  *) usage ;;
esac

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: install Rust with rustup (https://rustup.rs), then run this again"
  exit 1
fi
# fetch-test-model.sh downloads the model with pip; the test profile installs tools with it.
command -v python3 >/dev/null 2>&1 || apt_wanted+=(python3 python3-pip)

# The wanted packages not installed, from one dpkg-query call (it lists the known ones with
# their state and complains on stderr about those it has never heard of).
apt_missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' "${apt_wanted[@]}" 2>/dev/null || true)"
  for pkg in "${apt_wanted[@]}"; do
    [[ "$installed" == *" $pkg:installed "* ]] || apt_missing+=("$pkg")
  done
else
  log "no dpkg-query (not Debian or Ubuntu): not checking for ${apt_wanted[*]}; install their equivalents if a step fails"
fi

# Prints the requirements not installed at their pinned version, from one Python call; a line
# that is not `name` or `name==version` counts as unmet, so pip decides.
unmet_requirements() {
  python3 - "$TEST_PIP_REQUIREMENTS" <<'PY'
import importlib.metadata as metadata
import re
import sys

for line in open(sys.argv[1], encoding="utf-8"):
    requirement = line.split("#", 1)[0].strip()
    if not requirement:
        continue
    pinned = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*(?:==\s*(\S+))?", requirement)
    try:
        have = metadata.version(pinned[1]) if pinned else None
    except metadata.PackageNotFoundError:
        have = None
    if have is None or (pinned[2] is not None and have != pinned[2]):
        print(requirement)
PY
}

pip_missing=""
if [[ "$profile" == test ]]; then
  # No python3 yet (apt installs it below), or a Python too old to check: let pip decide.
  pip_missing="$(unmet_requirements 2>/dev/null)" || pip_missing="$TEST_PIP_REQUIREMENTS"
fi

rustup_missing=()
if [[ "$profile" == test ]]; then
  if command -v rustup >/dev/null 2>&1; then
    components=" $(rustup component list --installed 2>/dev/null | tr '\n' ' ')"
    for component in "${TEST_RUSTUP[@]}"; do
      [[ "$components" == *" $component-"* || "$components" == *" $component "* ]] \
        || rustup_missing+=("$component")
    done
  else
    command -v rustfmt >/dev/null 2>&1 || rustup_missing+=(rustfmt)
    command -v cargo-clippy >/dev/null 2>&1 || rustup_missing+=(clippy)
  fi
fi

if [[ "${#rustup_missing[@]}" -gt 0 ]] && ! command -v rustup >/dev/null 2>&1; then
  log "missing for $profile: ${rustup_missing[*]} (Rust without rustup: add them the way it was installed)"
  exit 1
fi
if [[ "${#apt_missing[@]}" -gt 0 ]]; then
  log "missing for $profile: ${apt_missing[*]}"
  if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "install them, then run this again:"
    echo "  sudo apt-get update && sudo apt-get install -y ${apt_missing[*]}" >&2
    exit 1
  fi
  log "installing with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >&2
fi

if [[ -n "$pip_missing" ]]; then
  log "installing Python tools: ${pip_missing//$'\n'/ }"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -r "$TEST_PIP_REQUIREMENTS" >&2
fi

if [[ "${#rustup_missing[@]}" -gt 0 ]]; then
  log "adding rustup components: ${rustup_missing[*]}"
  rustup component add "${rustup_missing[@]}" >&2
fi
