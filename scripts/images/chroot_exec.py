#!/usr/bin/env python3
"""Runs one RUN step of scripts/build-images.sh inside an image's root filesystem, as Docker
would: chrooted, in the WORKDIR, as the USER (looked up in the image's /etc/passwd and
/etc/group), with only the image's environment. chroot(8) cannot change directory or read the
image's user database, and a distroless image has no shell or env(1) to do it from inside.

Usage: chroot_exec.py ROOTFS USER WORKDIR [NAME=VALUE...] -- ARGV...
"""
import os
import sys


def lookup(user):
    """(uid, gid, home) of USER ("name|uid[:group|gid]") in the current root's files."""
    def table(path):
        try:
            with open(path, encoding="utf-8") as f:
                return [line.rstrip("\n").split(":") for line in f if line.count(":") >= 2]
        except FileNotFoundError:
            return []

    name, _, group = user.partition(":")
    passwd = table("/etc/passwd")
    entry = next((e for e in passwd if name in (e[0], e[2])), None)
    if entry is None and not name.isdigit():
        sys.exit(f"chroot_exec: no user {name!r} in the image's /etc/passwd")
    uid = int(entry[2]) if entry else int(name)
    home = entry[5] if entry and len(entry) > 5 else ("/root" if uid == 0 else "/")
    if not group:
        return uid, int(entry[3]) if entry else 0, home
    if group.isdigit():
        return uid, int(group), home
    found = next((e for e in table("/etc/group") if e[0] == group), None)
    if found is None:
        sys.exit(f"chroot_exec: no group {group!r} in the image's /etc/group")
    return uid, int(found[2]), home


def main():
    rootfs, user, workdir, *rest = sys.argv[1:]
    split = rest.index("--")
    env = dict(kv.split("=", 1) for kv in rest[:split])
    argv = rest[split + 1:]
    os.chroot(rootfs)
    uid, gid, home = lookup(user)
    os.chdir(workdir)
    env.setdefault("HOME", home)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        sys.exit(f"chroot_exec: cannot run {argv[0]}: {e}")


if __name__ == "__main__":
    main()
