#!/usr/bin/env python3
"""Turns a plan of dockerfile.py into the words scripts/build-images.sh runs.

  plan.py steps PLAN         one line per step: a step function of build-images.sh and its
                             words, quoted by shlex.join (the script evals each line)
  plan.py config PLAN        `umoci config` flags, NUL-separated
  plan.py sources PLAN       what the copies take: `binary BIN PACKAGE PROFILE FEATURES` (the
                             cargo profile; FEATURES comma-separated, may be empty) or
                             `file PATH`
  plan.py field PLAN KEY...  values at dotted keys, one a line
  plan.py name-index LAYOUT NAME
                             names an OCI layout's one image for `ctr images import`
"""
import json
import os
import shlex
import sys


def umoci_config_args(p):
    """`umoci config` flags that give an empty image the plan's config."""
    c, args = p["config"], []
    args += [f"--config.user={c['User']}"] if c["User"] else []
    args += [f"--config.workingdir={c['WorkingDir']}"] if c["WorkingDir"] else []
    args += [f"--config.exposedports={port}" for port in c["ExposedPorts"]]
    args += [f"--config.env={e}" for e in c["Env"]]
    args += [f"--config.entrypoint={a}" for a in c["Entrypoint"]]
    args += [f"--config.cmd={a}" for a in c["Cmd"]]
    args += [f"--config.label={k}={v}" for k, v in c["Labels"].items()]
    return args


def step_lines(p):
    """One line per step: a step function of build-images.sh and its shell-quoted words."""
    for s in p["steps"]:
        if s["op"] == "run":
            words = ["run", s["user"], s["workdir"], *s["env"], "--", *s["argv"]]
        elif s["op"] == "copy" and s["source"]["kind"] == "cargo":
            words = ["copy_binary", s["source"]["binary"], s["dest"], s["chown"], s["chmod"]]
        elif s["op"] == "copy":
            words = ["copy_file", s["source"]["path"], s["dest"], s["chown"], s["chmod"]]
        else:
            words = ["workdir", s["path"]]
        print(shlex.join(words))


def name_index(layout, name):
    """Names the layout's one image for `ctr images import` (io.containerd.image.name: the full
    name; org.opencontainers.image.ref.name stays the tag, as OCI tools expect)."""
    path = os.path.join(layout, "index.json")
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if len(index["manifests"]) != 1:
        raise SystemExit(f"{path}: expected one manifest")
    index["manifests"][0].setdefault("annotations", {})["io.containerd.image.name"] = name
    with open(path, "w", encoding="utf-8") as f:
        json.dump(index, f, separators=(",", ":"))


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "name-index":
        name_index(*args)
        return
    with open(args[0], encoding="utf-8") as f:
        p = json.load(f)
    if cmd == "steps":
        step_lines(p)
    elif cmd == "config":
        sys.stdout.write("".join(arg + "\0" for arg in umoci_config_args(p)))
    elif cmd == "sources":
        for s in p["steps"]:
            src = s.get("source")
            if src and src["kind"] == "cargo":
                print("binary", src["binary"], src["package"], src["profile"],
                      ",".join(src["features"]))
            elif src:
                print("file", src["path"])
    elif cmd == "field":
        for key in args[1:]:
            value = p
            for part in key.split("."):
                value = value[part]
            print(value)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
