# shellcheck shell=bash
# Base images as Debian packages, for scripts/build-images.sh (sourced): each recipe makes, with
# mmdebstrap, a root filesystem tarball with what the image of that name holds. Tarballs are
# cached per suite and day (the mirror changes daily; a new day picks up security updates).

# Debian's mirror; point it at a local mirror to build without the internet.
DEBIAN_MIRROR="${LLAMAFLEET_DEBIAN_MIRROR:-http://deb.debian.org}"
# The packages of gcr.io/distroless/cc-debian12 (static + base + cc, as distroless lists them).
DISTROLESS_CC_PACKAGES="base-files netbase tzdata ca-certificates libc6 libssl3 libgcc-s1 libgomp1 libstdc++6"
images_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The apt sources of a Debian image of SUITE: the suite, its updates, its security updates.
debian_sources() {
  local suite="$1"
  echo "deb $DEBIAN_MIRROR/debian $suite main"
  echo "deb $DEBIAN_MIRROR/debian $suite-updates main"
  echo "deb $DEBIAN_MIRROR/debian-security $suite-security main"
}

# debian:SUITE-slim: minbase (as debuerreotype builds Docker's official image) with its slim
# dpkg excludes and apt settings; merged /usr through the light hook (the default pulls usrmerge
# and perl into the image).
recipe_debian_slim() {
  local suite="$1" out="$2"
  local sources=()
  mapfile -t sources < <(debian_sources "$suite")
  mmdebstrap --quiet --mode=root --format=tar --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/overrides/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook="bash '$images_dir/slim-hook.sh' \"\$1\"" \
    "$suite" "$out" "${sources[@]}"
}

# gcr.io/distroless/cc-debianN: its packages unpacked, no maintainer scripts (see the hook).
recipe_distroless_cc() {
  local suite="$1" out="$2"
  local sources=()
  mapfile -t sources < <(debian_sources "$suite")
  # shellcheck disable=SC2086 # the package list is words
  mmdebstrap --quiet --mode=root --format=tar --variant=extract \
    --include="${DISTROLESS_CC_PACKAGES// /,}" \
    --extract-hook="bash '$images_dir/distroless-hook.sh' \"\$1\" $DISTROLESS_CC_PACKAGES" \
    "$suite" "$out" "${sources[@]}"
}
# Package management is not part of a distroless image (status.d stays, for scanners).
DISTROLESS_DROP=(./etc/apt ./etc/dpkg ./var/lib/apt ./var/cache/apt ./var/log/apt
  ./var/lib/dpkg/{status,status-old,available,arch,info,triggers,updates,alternatives,lock})

# The cached base tarball of RECIPE (debian-slim, distroless-cc) and SUITE, made when missing
# (about a minute); prints its path. The name holds the day and a hash of the recipe files, so a
# changed recipe or a new day makes a new one; older ones of the recipe are removed.
base_tarball() {
  local recipe="$1" suite="$2"
  local dir="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/images"
  local key
  key="$(cat "$images_dir"/{bases.sh,slim-hook.sh,distroless-hook.sh,tarfilter.py} \
    <(echo "$DEBIAN_MIRROR") | sha256sum | cut -c1-12)"
  local tarball
  tarball="$dir/$recipe-$suite-$(date -u +%Y%m%d)-$key.tar"
  mkdir -p "$dir"
  # One lock per tarball: the CI's background Vulkan step builds its trixie base at the lowest
  # CPU priority, and a lock shared by every base made the suite's bookworm bases wait for it.
  (
    flock 9
    if [[ ! -s "$tarball" ]]; then
      echo "base: building $recipe $suite with mmdebstrap" >&2
      rm -f "$tarball.raw" "$tarball.tmp"
      if ! "recipe_${recipe//-/_}" "$suite" "$tarball.raw" >"$tarball.log" 2>&1; then
        tail -n 40 "$tarball.log" >&2
        echo "base: $recipe $suite failed; its log: $tarball.log" >&2
        exit 1
      fi
      # Device nodes are the runtime's business: images carry an empty /dev.
      local drop=('./dev/*')
      [[ "$recipe" != distroless-cc ]] || drop+=("${DISTROLESS_DROP[@]}")
      python3 "$images_dir/tarfilter.py" "$tarball.raw" "$tarball.tmp" "${drop[@]}"
      mv "$tarball.tmp" "$tarball"
      rm "$tarball.raw" "$tarball.log"
      find "$dir" -maxdepth 1 -name "$recipe-$suite-*" ! -name "${tarball##*/}" -delete
    fi
  ) 9>"$dir/.$recipe-$suite.lock"
  echo "$tarball"
}
