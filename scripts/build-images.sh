#!/usr/bin/env bash
# Builds the project's container images without a container engine or registry: each image is
# what the runtime stage (the last FROM) of its Dockerfile says, carried out instruction by
# instruction by scripts/images/dockerfile.py, on a base made from Debian packages
# (scripts/images/bases.sh) and with the binaries built on this machine. An instruction the
# interpreter does not understand stops the build with its file and line, so docker/*.Dockerfile
# stay the one description of the images (tests/e2e/images.rs holds the two together).
#
#   bash scripts/build-images.sh OUT_DIR [agent|operator|pause|e2e-client ...]
#       OCI archives OUT_DIR/agent.tar, operator.tar, pause.tar (default: these three; the
#       test suite adds e2e-client, its client pod with curl, and agent-vulkan, the agent's
#       Vulkan build from docker/agent-vulkan.Dockerfile, release only), each
#       named for `ctr images import` (io.containerd.image.name); prints `ARCHIVE NAME` lines.
#   bash scripts/build-images.sh --check [--json] [DOCKERFILE ...]
#       Only reads the Dockerfiles (default: agent and operator) and prints their plans.
#
# The pause image (the pod sandbox of the test cluster) is Kubernetes' own: build/pause of the
# kubernetes module tests/cluster/k8s pins, pause.c compiled with its Makefile's CFLAGS and its
# Dockerfile interpreted as ours are: registry.k8s.io/pause:<the Makefile's TAG>.
#
# Environment:
#   LLAMAFLEET_IMAGE_PROFILE  release (default: `cargo build --locked` of the package and with
#                             the cargo profile the Dockerfile's build stage names, e.g.
#                             --release or --profile operator-release) or debug (the test
#                             suite's debug binaries, debug info stripped on the way into the
#                             image)
#   LLAMAFLEET_IMAGE_PREBUILT 1: release binaries already built with the Dockerfile's profile
#                             (by `cargo test --release`, say) are taken as they are, without
#                             a `cargo build` of their own
#   CARGO_TARGET_DIR          where the binaries are (default: target)
#   LLAMAFLEET_VULKAN_TARGET_DIR  where agent-vulkan's are (default $LLAMAFLEET_CACHE/target-vulkan)
#   LLAMAFLEET_CACHE          base tarballs go under $LLAMAFLEET_CACHE/images
#                             (default ~/.cache/llamafleet)
#   LLAMAFLEET_DEBIAN_MIRROR  the Debian mirror (default http://deb.debian.org)
#
# An image whose inputs (plan, base, binaries, these scripts) are unchanged is not rebuilt:
# OUT_DIR/<image>.tar.inputs holds their hash. Needs root (mmdebstrap, umoci unpack and RUN
# steps work on real ownership and mounts), mmdebstrap, umoci, unshare, gcc, libc6-dev.
set -euo pipefail
shopt -s inherit_errexit # a failing command inside $(...) fails the build too
cd "$(dirname "$0")/.."
repo="$PWD"
images="$repo/scripts/images"
dockerfiles=(docker/agent.Dockerfile docker/operator.Dockerfile)

if [[ "${1:-}" == --check ]]; then
  shift
  json=()
  if [[ "${1:-}" == --json ]]; then json=(--json) && shift; fi
  (($#)) || set -- "${dockerfiles[@]}"
  exec python3 "$images/dockerfile.py" check --context "$repo" "${json[@]}" "$@"
fi
if [[ $# -lt 1 || "$1" == -* ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi

[[ $EUID == 0 ]] || { echo "build-images.sh: run as root (mmdebstrap --mode=root, umoci unpack, chroot)" >&2; exit 1; }
for tool in mmdebstrap umoci unshare gcc strip; do
  command -v "$tool" >/dev/null || {
    echo "build-images.sh: $tool is missing: apt-get install -y mmdebstrap umoci util-linux gcc libc6-dev binutils" >&2
    exit 1
  }
done
# shellcheck source=scripts/images/bases.sh
source "$images/bases.sh"

mkdir -p "$1"
out="$(cd "$1" && pwd -P)"
shift
(($#)) || set -- agent operator pause
profile="${LLAMAFLEET_IMAGE_PROFILE:-release}"
[[ "$profile" == release || "$profile" == debug ]] || { echo "LLAMAFLEET_IMAGE_PROFILE: release or debug" >&2; exit 2; }
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/llamafleet/Chart.yaml)"

works=()
cleanup() { ((${#works[@]} == 0)) || rm -rf "${works[@]}"; }
trap cleanup EXIT

plan_field() { python3 "$images/plan.py" field "$work/plan.json" "$@"; }

# The binary BIN of PACKAGE for this image profile: in release, built with the cargo profile
# the Dockerfile names (CARGO_PROFILE; FEATURES comma-separated, may be empty); in debug, the
# test suite's debug build.
binary_path() {
  local bin="$1" package="$2" cargo_profile="$3" features="$4" dir=debug build="cargo build"
  if [[ "$profile" == release ]]; then
    build="cargo build --profile $cargo_profile"
    [[ "${LLAMAFLEET_IMAGE_PREBUILT:-}" == 1 ]] ||
      cargo build --profile "$cargo_profile" --locked -p "$package" \
        ${features:+--features "$features"} >&2 || return 1
    case "$cargo_profile" in # cargo's output folder of each profile
      dev | test) dir=debug ;;
      bench) dir=release ;;
      *) dir="$cargo_profile" ;;
    esac
  elif [[ -n "$features" && -z "${feature_target:-}" ]]; then
    echo "build-images.sh: $package with features $features has no debug build; use release" >&2
    return 1
  fi
  [[ -x "$target/$dir/$bin" ]] || {
    echo "build-images.sh: $target/$dir/$bin missing ($build -p $package)" >&2
    return 1
  }
  echo "$target/$dir/$bin"
}

# A destination inside the root filesystem, refusing symlinks that lead out of it.
inside() {
  local path
  path="$(realpath -m "$rootfs/$1")"
  [[ "$path" == "$rootfs"/* ]] || { echo "build-images.sh: $1 leaves the image's root" >&2; return 1; }
  echo "$path"
}

# The steps `plan.py steps` names (the plan's RUN, COPY, ADD and WORKDIR), on $rootfs.
step_run() { # USER WORKDIR NAME=VALUE... -- ARGV...
  local words=("$@") i
  for i in "${!words[@]}"; do [[ "${words[i]}" != -- ]] || break; done
  echo "  RUN as $1 in $2: ${words[*]:i+1}" >&2
  local made_resolv=""
  if [[ -d "$rootfs/etc" && ! -e "$rootfs/etc/resolv.conf" ]]; then
    : >"$rootfs/etc/resolv.conf" && made_resolv=1
  fi
  # Its own mount and PID namespaces: what it mounts and starts ends with it.
  local status=0
  # shellcheck disable=SC2016 # the inner script's own variables
  unshare --mount --pid --fork --kill-child -- bash -euc '
    r="$1"; shift
    mount -t proc proc "$r/proc"
    mount -t tmpfs -o nosuid,mode=0755 dev "$r/dev"
    for node in null zero full random urandom tty; do
      : >"$r/dev/$node" && mount --bind "/dev/$node" "$r/dev/$node"
    done
    ln -s /proc/self/fd "$r/dev/fd" && mkdir "$r/dev/pts" "$r/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" && ln -s pts/ptmx "$r/dev/ptmx"
    [[ ! -e "$r/etc/resolv.conf" ]] || mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
    exec python3 "$0" "$r" "$@"' "$images/chroot_exec.py" "$rootfs" "$@" >&2 || status=$?
  [[ -z "$made_resolv" ]] || rm -f "$rootfs/etc/resolv.conf"
  return "$status"
}
step_copy_binary() { # BIN DEST UID:GID MODE
  echo "  COPY $1 -> $2" >&2
  install -D -m "${4:-0755}" -o "${3%%:*}" -g "${3##*:}" "$work/bin/$1" "$(inside "$2")"
}
step_copy_file() { # PATH DEST UID:GID MODE
  echo "  COPY $1 -> $2" >&2
  install -D -m "${4:-$(stat -c %a "$context/$1")}" -o "${3%%:*}" -g "${3##*:}" \
    "$context/$1" "$(inside "$2")"
}
step_workdir() { # PATH
  install -d "$(inside "$1")"
}

# build_image NAME DOCKERFILE REF CONTEXT [--build-arg K=V ...]: OUT_DIR/NAME.tar, image REF.
build_image() {
  local name="$1" dockerfile="$2" ref="$3" context="$4"
  shift 4
  local work
  work="$(mktemp -d "$out/.$name.XXXXXX")"
  works+=("$work")
  python3 "$images/dockerfile.py" plan --context "$context" "$@" "$dockerfile" >"$work/plan.json"

  local recipe suite base=""
  { read -r recipe; read -r suite; } < <(plan_field base.recipe base.suite)
  [[ "$recipe" == scratch ]] || base="$(base_tarball "$recipe" "$suite")"

  # Inputs: the binaries (built now in release; known by size and mtime, as cargo knows them:
  # hashing 650 MB of debug binaries takes longer than all the rest of a warm run), the context
  # files, the base, the plan, these scripts.
  local kind a b c d files=("$work/plan.json" "$0" "$images"/*.py "$images"/*.sh) stamps=()
  declare -A binaries=()
  while read -r kind a b c d; do
    if [[ "$kind" == binary ]]; then
      binaries[$a]="$(binary_path "$a" "$b" "$c" "$d")"
      stamps+=("$(stat -L -c '%n %s %.9Y' "${binaries[$a]}")")
    else
      files+=("$context/$a")
    fi
  done < <(python3 "$images/plan.py" sources "$work/plan.json")
  local hash
  hash="$({ echo "$ref $base $profile"; printf '%s\n' "${stamps[@]}"; sha256sum "${files[@]}" | cut -d' ' -f1; } |
    sha256sum | cut -c1-64)"
  if [[ -s "$out/$name.tar" && "$(cat "$out/$name.tar.inputs" 2>/dev/null)" == "$hash" ]]; then
    echo "$name: up to date" >&2
    echo "$out/$name.tar $ref"
    return
  fi

  echo "$name: building $ref from $dockerfile${binaries[*]:+ ($profile binaries)}" >&2
  mkdir "$work/bin"
  local bin
  for bin in "${!binaries[@]}"; do
    if [[ "$profile" == debug ]]; then
      strip --strip-debug -o "$work/bin/$bin" "${binaries[$bin]}"
    else
      cp "${binaries[$bin]}" "$work/bin/$bin"
    fi
  done

  local image="$work/oci:${ref##*:}"
  umoci init --layout "$work/oci"
  umoci new --image "$image"
  [[ -z "$base" ]] || umoci raw add-layer --image "$image" \
    --history.created_by "FROM $(plan_field base.from) ($(basename "$base"))" "$base"
  umoci unpack --image "$image" "$work/bundle"
  local rootfs="$work/bundle/rootfs" step
  while IFS= read -r step; do
    eval "step_$step" # each line: a step function and its words, quoted by shlex.join
  done < <(python3 "$images/plan.py" steps "$work/plan.json")
  umoci repack --image "$image" --history.created_by "$(plan_field layer)" "$work/bundle"
  local config=()
  mapfile -d '' config < <(python3 "$images/plan.py" config "$work/plan.json")
  umoci config --image "$image" --history.created_by "$dockerfile: config" "${config[@]}"
  umoci gc --layout "$work/oci"
  python3 "$images/plan.py" name-index "$work/oci" "$ref"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/oci" \
    -cf "$work/$name.tar" oci-layout index.json blobs
  mv -f "$work/$name.tar" "$out/$name.tar"
  echo "$hash" >"$out/$name.tar.inputs"
  echo "$name: $out/$name.tar ($(du -h "$out/$name.tar" | cut -f1))" >&2
  echo "$out/$name.tar $ref"
}

# Kubernetes' pause image from the kubernetes module the test cluster is built from.
build_pause() {
  local k8s modcache pause tag cflags arch context
  k8s="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }
              $1 == "k8s.io/kubernetes" { print $2 }' tests/cluster/k8s/go.mod | head -n1)"
  modcache="$(go env GOMODCACHE 2>/dev/null || echo "${GOMODCACHE:-$HOME/go/pkg/mod}")"
  pause="$modcache/k8s.io/kubernetes@$k8s/build/pause"
  [[ -d "$pause" ]] || (cd tests/cluster/k8s && go mod download "k8s.io/kubernetes@$k8s")
  tag="$(sed -n 's/^TAG ?= *//p' "$pause/Makefile")"
  cflags="$(sed -n 's/^CFLAGS = *//p' "$pause/Makefile")"
  cflags="${cflags//\$(TAG)/$tag}"
  cflags="${cflags//\$(REV)/$k8s}"
  arch="$(dpkg --print-architecture)"
  context="$(mktemp -d "$out/.pause-context.XXXXXX")"
  works+=("$context")
  mkdir "$context/bin"
  # shellcheck disable=SC2086 # the Makefile's CFLAGS are words
  gcc $cflags -o "$context/bin/pause-linux-$arch" "$pause/linux/pause.c"
  strip "$context/bin/pause-linux-$arch"
  build_image pause "$pause/Dockerfile" "registry.k8s.io/pause:$tag" "$context" \
    --build-arg "BASE=$(sed -n 's/^BASE.linux := *//p' "$pause/Makefile")" --build-arg "ARCH=$arch"
}

for name in "$@"; do
  case "$name" in
    agent | operator)
      build_image "$name" "docker/$name.Dockerfile" "ghcr.io/llamafleet/$name:$version" "$repo" ;;
    # The Vulkan build of the agent (AMD and Intel GPUs), as scripts/vulkan-build.sh makes it:
    # Debian 13's Vulkan headers and its own target dir, whose debug folder (the profile debug)
    # holds the build of scripts/gpu-checks.sh, with the feature: a cargo feature can have a
    # debug build there, unlike in the suite's target dir.
    agent-vulkan)
      feature_target=1
      bash scripts/setup.sh vulkan
      VULKAN_SDK="$(bash scripts/vulkan-sdk.sh)"
      export VULKAN_SDK
      cpu_target="$target"
      target="$(realpath -m "${LLAMAFLEET_VULKAN_TARGET_DIR:-${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/target-vulkan}")"
      CARGO_TARGET_DIR="$target" build_image "$name" docker/agent-vulkan.Dockerfile \
        "ghcr.io/llamafleet/agent:$version-vulkan" "$repo"
      target="$cpu_target" feature_target="" ;;
    pause) build_pause ;;
    # The real-pod suite's client pod (curl); not a product image.
    e2e-client)
      build_image "$name" tests/cluster/images/client.Dockerfile llamafleet.dev/e2e-client:1 "$repo" ;;
    *) echo "build-images.sh: no image $name (agent, agent-vulkan, operator, pause, e2e-client)" >&2 && exit 2 ;;
  esac
done
