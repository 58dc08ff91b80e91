#!/usr/bin/env bash
# mmdebstrap customize hook for debian:<suite>-slim: what debuerreotype (the tool behind Docker's
# official Debian images) adds to a minbase rootfs, and nothing of the build machine's.
# The slim excludes (docs but copyright, man pages, locales) are dpkg options of bases.sh.
set -euo pipefail
root="$1"

# The build host's name and resolver leak in through mmdebstrap; a runtime mounts its own.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
rm -f "$root/var/cache/apt/pkgcache.bin" "$root/var/cache/apt/srcpkgcache.bin"

# Services never start inside an image build.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# An image build does not survive power loss anyway: no fsync per unpacked file.
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

# Keep layers lean: the effect of `apt-get clean` after every install (a Dockerfile's
# `rm -rf /var/lib/apt/lists/*` relies on this for the .deb files), compressed indexes, no
# translations, autoremove that also drops what was only suggested.
clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<CONF
DPkg::Post-Invoke { $clean };
APT::Update::Post-Invoke { $clean };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' \
  >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
