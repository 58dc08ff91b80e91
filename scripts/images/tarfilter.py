#!/usr/bin/env python3
"""Copies a root filesystem tarball without some paths: `tarfilter.py IN OUT PATH...` drops each
PATH (as the tarball names it, e.g. ./etc/apt) and everything below it; `PATH/*` drops only
what is below. GNU tar --delete trips over mmdebstrap's PAX headers, hence this.
"""
import sys
import tarfile


def main():
    src, dst, *paths = sys.argv[1:]
    whole = tuple(p.rstrip("/") for p in paths if not p.endswith("/*"))
    below = tuple(p[:-1] for p in paths if p.endswith("/*"))
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            name = member.name if member.name.startswith("./") else "./" + member.name
            if name.rstrip("/") in whole or name.startswith(tuple(p + "/" for p in whole)):
                continue
            if name.startswith(below):
                continue
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)


if __name__ == "__main__":
    main()
