#!/usr/bin/env bash
# mmdebstrap extract hook (the extract variant runs no customize hooks) for
# gcr.io/distroless/cc-debian12: the packages distroless lists, unpacked without their
# maintainer scripts (no shell, no dpkg, no apt in the image), plus the files distroless writes
# itself: users root, nonroot (65532) and nobody, /etc/nsswitch.conf, the CA bundle, /tmp and
# /home/nonroot, and /var/lib/dpkg/status.d for image scanners. mmdebstrap's own apt and dpkg
# files stay until it has cleaned up; bases.sh deletes them from the tarball.
# Usage: distroless-hook.sh ROOT PACKAGE...  (the --variant=extract --include list)
set -euo pipefail
root="$1"
shift
wanted=" $* "

# apt resolved hard dependencies too (debconf, mawk, openssl, gcc-12-base): distroless does not
# ship them, so their files go again; the listed packages are recorded for scanners.
install -d "$root/var/lib/dpkg/status.d"
for deb in "$root"/var/cache/apt/archives/*.deb; do
  pkg="$(dpkg-deb --field "$deb" Package)"
  if [[ "$wanted" == *" $pkg "* ]]; then
    dpkg-deb --field "$deb" >"$root/var/lib/dpkg/status.d/$pkg"
    continue
  fi
  dpkg-deb --fsys-tarfile "$deb" | tar -t | while IFS= read -r path; do
    [[ -d "$root/$path" && ! -L "$root/$path" ]] || rm -f "$root/$path"
  done
done
# Emptied directories of those packages (only empty ones; -depth: children first).
for deb in "$root"/var/cache/apt/archives/*.deb; do
  [[ "$wanted" == *" $(dpkg-deb --field "$deb" Package) "* ]] && continue
  dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -vx '\./' | sort -r | while IFS= read -r path; do
    if [[ -d "$root/$path" && ! -L "$root/$path" ]]; then
      rmdir --ignore-fail-on-non-empty "$root/$path"
    fi
  done
done

# What update-ca-certificates would have written: every certificate of the package, one bundle.
install -d "$root/etc/ssl/certs"
for crt in "$root"/usr/share/ca-certificates/*/*.crt; do
  cat "$crt"
  [[ -z "$(tail -c1 "$crt")" ]] || echo
done >"$root/etc/ssl/certs/ca-certificates.crt"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
GROUP
cat >"$root/etc/nsswitch.conf" <<'NSS'
passwd:         files
group:          files
shadow:         files
gshadow:        files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
NSS
install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
install -d -m 1777 "$root/tmp"

rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
