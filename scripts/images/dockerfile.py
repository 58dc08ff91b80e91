#!/usr/bin/env python3
"""The Dockerfile interpreter behind scripts/build-images.sh.

`plan` reads a Dockerfile and prints, as JSON, what its runtime stage (the last FROM) makes: the
base, each step that changes the filesystem (RUN, COPY, ADD, WORKDIR) and the image config. Any
instruction, flag or form it does not understand is refused with file:line and the instruction,
so a Dockerfile can only say what the builder really does. Build stages are not run: their
`cargo build` line names the package whose binary, built on this machine, stands in for
`COPY --from=<stage> /out/<binary>`.

`check` prints plans for people (or, with --json, for tests); plan.py turns a plan into the
words build-images.sh runs.

Usage: dockerfile.py plan|check [--context DIR] [--build-arg NAME=VALUE]... [--json] FILE...
"""
import argparse
import json
import os
import re
import shlex
import sys

# Instructions of the Dockerfile reference; a word that is none of these is refused anywhere.
KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}
# What the runtime stage may use: each is carried out by the builder, nothing is ignored.
RUNTIME = {"RUN", "COPY", "ADD", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "ENV", "WORKDIR",
           "LABEL", "ARG"}
# The default PATH of Debian and distroless images (and of Docker's RUN when none is set).
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Distroless releases by Debian version: the suite its packages come from.
DISTROLESS_SUITES = {"12": "bookworm"}
# Magic numbers of what ADD would unpack instead of copying (tar at offset 257).
ARCHIVE_MAGIC = [b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"]


class Refused(Exception):
    """A Dockerfile says something the builder does not do."""


def base_image(ref, where):
    """The recipe for a FROM image and the config the real image carries."""
    m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:([a-z]+)-slim", ref)
    if m:
        return {"from": ref, "recipe": "debian-slim", "suite": m[1],
                "config": {"Env": [PATH], "Cmd": ["bash"]}}
    m = re.fullmatch(r"gcr\.io/distroless/cc-debian(\d+)(?::(nonroot|latest))?", ref)
    if m and m[1] in DISTROLESS_SUITES:
        nonroot = m[2] == "nonroot"
        return {"from": ref, "recipe": "distroless-cc", "suite": DISTROLESS_SUITES[m[1]],
                "config": {"Env": [PATH, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
                           "User": "65532" if nonroot else "0",
                           "WorkingDir": "/home/nonroot" if nonroot else "/"}}
    if ref == "scratch":
        return {"from": ref, "recipe": "scratch", "suite": "", "config": {}}
    raise Refused(f"{where}: no recipe for base image {ref!r} (known: debian:<suite>-slim, "
                  "gcr.io/distroless/cc-debian12[:nonroot], scratch)")


def instructions(path):
    """(line, KEYWORD, text) of each instruction, continuations joined, comments dropped."""
    out, pending, start = [], None, 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, raw in enumerate(lines, 1):
        m = re.fullmatch(r"#\s*escape\s*=\s*(\S+)\s*", raw)
        if m and not out and pending is None and m[1] != "\\":
            raise Refused(f"{path}:{n}: parser directive {raw.strip()!r} (only '\\' escapes)")
        if raw.strip().startswith("#") or (pending is not None and not raw.strip()):
            continue
        if pending is None:
            if not raw.strip():
                continue
            pending, start = "", n
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        text = (pending + raw).strip()
        pending = None
        word, _, rest = text.partition(" ")
        keyword = word.upper()
        if keyword not in KNOWN:
            raise Refused(f"{path}:{start}: unknown instruction {text!r}")
        out.append((start, keyword, rest.strip()))
    if pending is not None:
        raise Refused(f"{path}:{start}: the file ends inside a continued line")
    return out


def substitute(text, env, where):
    """Docker's ${VAR}, $VAR, ${VAR:-word}, ${VAR:+word} and \\$ in non-RUN instructions."""
    def one(m):
        if m[0] == "\\$":
            return "$"
        if m[0] == "${":
            raise Refused(f"{where}: unsupported substitution in {text!r}")
        name = m[1] or m[4]
        value = env.get(name)
        if m[2] == ":-":
            return value if value else m[3]
        if m[2] == ":+":
            return m[3] if value else ""
        return value or ""
    return re.sub(r"\\\$|\$\{([A-Za-z_]\w*)(?:(:[-+])([^}]*))?\}|\$([A-Za-z_]\w*)|\$\{", one, text)


def split_flags(text, allowed, where):
    """Leading --flag=value words, refused unless allowed; returns (flags, rest)."""
    flags = {}
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        name, _, value = word[2:].partition("=")
        if name not in allowed:
            raise Refused(f"{where}: flag --{name} is not supported here")
        flags[name] = value
        text = text.strip()
    return flags, text


def exec_or_shell(text, where):
    """argv of a JSON (exec) form, or /bin/sh -c for the shell form."""
    if text.startswith("["):
        try:
            argv = json.loads(text)
        except json.JSONDecodeError as e:
            raise Refused(f"{where}: malformed JSON form {text!r}: {e}") from None
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise Refused(f"{where}: the JSON form must be a list of strings")
        return argv
    if text.startswith("<<"):
        raise Refused(f"{where}: heredocs are not supported")
    return ["/bin/sh", "-c", text]


def key_values(text, env, where):
    """ENV and LABEL arguments: K=V words (quotes as the shell reads them) or legacy `K V`."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise Refused(f"{where}: expected KEY VALUE or KEY=VALUE")
        name, value = words[0], text.split(None, 1)[1].strip()
        return [(name, substitute(value, env, where))]
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise Refused(f"{where}: expected KEY=VALUE, got {word!r}")
        pairs.append((name, substitute(value, env, where)))
    return pairs


def cargo_source(stage, src, where):
    """What `COPY --from=<stage> /out/<bin>` copies: the package the stage's cargo line builds."""
    binary = os.path.basename(src)
    if os.path.dirname(src) != "/out" or not binary:
        raise Refused(f"{where}: only /out/<binary> can be copied from a build stage")
    runs = " ".join(text for _, keyword, text in stage["body"] if keyword == "RUN")
    m = re.search(r"cargo build ([^&;|\n]*)", runs)
    if not m or f"/out/{binary}" not in runs:
        raise Refused(f"{where}: stage {stage['name']!r} has no `cargo build` line that "
                      f"installs /out/{binary}")
    args = m[1].split()
    package, features, profile = None, [], "dev"
    for i, arg in enumerate(args):
        if arg in ("-p", "--package") and i + 1 < len(args):
            package = args[i + 1]
        elif arg in ("-r", "--release"):
            profile = "release"
        elif arg == "--profile" and i + 1 < len(args):
            profile = args[i + 1]
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
        elif arg == "--features" and i + 1 < len(args):
            features = args[i + 1].split(",")
        elif arg.startswith("--features="):
            features = arg.split("=", 1)[1].split(",")
    if package is None:
        raise Refused(f"{where}: the `cargo build` line of stage {stage['name']!r} names no -p")
    return {"kind": "cargo", "package": package, "binary": binary, "features": features,
            "profile": profile}


def context_source(context, src, add, where):
    """A file of the build context (the repository root, or the pause context)."""
    if add and re.match(r"[a-z]+://|git@", src):
        raise Refused(f"{where}: ADD of a URL is not supported")
    if any(c in src for c in "*?["):
        raise Refused(f"{where}: wildcards are not supported")
    path = os.path.normpath(src.lstrip("/"))
    if path.startswith(".."):
        raise Refused(f"{where}: {src!r} is outside the build context")
    full = os.path.join(context, path)
    if not os.path.isfile(full):
        raise Refused(f"{where}: {src!r} is not a file of the build context {context}")
    if add:
        with open(full, "rb") as f:
            head = f.read(512)
        if any(head.startswith(m) for m in ARCHIVE_MAGIC) or head[257:262] == b"ustar":
            raise Refused(f"{where}: ADD would unpack the archive {src!r}; not supported")
    return {"kind": "context", "path": path}


def plan(path, build_args, context):
    """The runtime stage of `path` as base, steps and config (see the module doc)."""
    stages, global_args = [], {}
    for line, keyword, text in instructions(path):
        where = f"{path}:{line}: {keyword} {text}"
        if keyword == "ARG" and not stages:
            name, eq, default = text.partition("=")
            global_args[name] = build_args.get(name, default if eq else None)
        elif keyword == "FROM":
            flags, text = split_flags(text, set(), where)
            words = substitute(text, global_args, where).split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                raise Refused(f"{where}: expected FROM <image> [AS <name>]")
            stages.append({"image": words[0], "name": words[2] if len(words) == 3 else "",
                           "line": line, "body": []})
        elif not stages:
            raise Refused(f"{where}: only ARG may come before the first FROM")
        else:
            stages[-1]["body"].append((line, keyword, text))
    if not stages:
        raise Refused(f"{path}: no FROM")
    final, earlier = stages[-1], {s["name"]: s for s in stages[:-1] if s["name"]}
    where = f"{path}:{final['line']}: FROM {final['image']}"
    if final["image"] in earlier:
        raise Refused(f"{where}: a runtime stage built on another stage is not supported")
    base = base_image(final["image"], where)
    config = {"User": "", "ExposedPorts": [], "Env": [], "Entrypoint": [], "Cmd": [],
              "WorkingDir": "", "Labels": {}}
    config.update(json.loads(json.dumps(base["config"])))
    stage_args, steps, cmd_set = {}, [], False

    def env_map():
        env = dict(stage_args)
        env.update(e.split("=", 1) for e in config["Env"])
        return env

    def set_env(name, value):
        config["Env"] = [e for e in config["Env"] if e.split("=", 1)[0] != name]
        config["Env"].append(f"{name}={value}")

    for line, keyword, text in final["body"]:
        where = f"{path}:{line}: {keyword} {text}"
        if keyword not in RUNTIME:
            raise Refused(f"{where}: {keyword} is not something scripts/build-images.sh builds "
                          f"(it carries out {', '.join(sorted(RUNTIME))})")
        step = {"line": line, "instruction": f"{keyword} {text}"}
        if keyword == "ARG":
            name, eq, default = text.partition("=")
            value = build_args.get(name, global_args.get(name) if not eq else default)
            if value is not None:
                stage_args[name] = substitute(value, env_map(), where)
        elif keyword == "RUN":
            split_flags(text, set(), where)
            env = [f"{k}={v}" for k, v in stage_args.items()
                   if not any(e.startswith(k + "=") for e in config["Env"])] + config["Env"]
            steps.append({**step, "op": "run", "argv": exec_or_shell(text, where),
                          "user": config["User"] or "0", "workdir": config["WorkingDir"] or "/",
                          "env": env if any(e.startswith("PATH=") for e in env)
                          else [PATH] + env})
        elif keyword in ("COPY", "ADD"):
            allowed = {"chown", "chmod"} | ({"from"} if keyword == "COPY" else set())
            flags, text = split_flags(substitute(text, env_map(), where), allowed, where)
            words = json.loads(text) if text.startswith("[") else text.split()
            if len(words) != 2:
                raise Refused(f"{where}: expected exactly one source and one destination")
            src, dest = words
            if "from" in flags:
                if flags["from"] not in earlier:
                    raise Refused(f"{where}: --from must name an earlier stage of this file")
                source = cargo_source(earlier[flags["from"]], src, where)
            else:
                source = context_source(context, src, keyword == "ADD", where)
            if dest.endswith("/"):
                dest += os.path.basename(src)
            dest = os.path.normpath(os.path.join(config["WorkingDir"] or "/", dest))
            if flags.get("chown") and not re.fullmatch(r"\d+(:\d+)?", flags["chown"]):
                raise Refused(f"{where}: --chown takes numeric uid[:gid] here")
            if flags.get("chmod") and not re.fullmatch(r"[0-7]{3,4}", flags["chmod"]):
                raise Refused(f"{where}: --chmod takes an octal mode here")
            steps.append({**step, "op": "copy", "source": source, "dest": dest,
                          "chown": flags.get("chown") or "0:0", "chmod": flags.get("chmod", "")})
        elif keyword == "USER":
            config["User"] = substitute(text, env_map(), where)
        elif keyword == "EXPOSE":
            for port in substitute(text, env_map(), where).split():
                if not re.fullmatch(r"\d+(/(tcp|udp|sctp))?", port):
                    raise Refused(f"{where}: expected <port>[/<protocol>], got {port!r}")
                config["ExposedPorts"].append(port if "/" in port else port + "/tcp")
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = exec_or_shell(text, where)
            if not cmd_set:  # Docker: an ENTRYPOINT drops the CMD inherited from the base
                config["Cmd"] = []
        elif keyword == "CMD":
            config["Cmd"], cmd_set = exec_or_shell(text, where), True
        elif keyword == "ENV":
            for name, value in key_values(text, env_map(), where):
                set_env(name, value)
        elif keyword == "LABEL":
            config["Labels"].update(key_values(text, env_map(), where))
        elif keyword == "WORKDIR":
            workdir = substitute(text, env_map(), where)
            config["WorkingDir"] = os.path.normpath(
                os.path.join(config["WorkingDir"] or "/", workdir))
            steps.append({**step, "op": "workdir", "path": config["WorkingDir"]})
    keywords = sorted({s["instruction"].split()[0] for s in steps})
    layer = f"{path}:{steps[0]['line']}-{steps[-1]['line']} {' '.join(keywords)}" if steps else ""
    return {"file": path, "base": base, "steps": steps, "config": config, "layer": layer}


def print_plan(p):
    """The plan in words: base, what runs, what is copied, the config."""
    base = p["base"]
    print(f"{p['file']}\n  base    {base['from']} (recipe {base['recipe']} {base['suite']})")
    for s in p["steps"]:
        if s["op"] == "run":
            print(f"  run     :{s['line']} as {s['user']}: {shlex.join(s['argv'])}")
        elif s["op"] == "copy":
            src = s["source"]
            what = (f"{src['binary']} (cargo build -p {src['package']})"
                    if src["kind"] == "cargo" else src["path"])
            print(f"  copy    :{s['line']} {what} -> {s['dest']} ({s['chown']})")
        else:
            print(f"  workdir :{s['line']} {s['path']}")
    for key, value in p["config"].items():
        if value:
            print(f"  config  {key} {json.dumps(value)}")


def main():
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("cmd", choices=["plan", "check"])
    cli.add_argument("--context", default=".")
    cli.add_argument("--build-arg", action="append", default=[])
    cli.add_argument("--json", action="store_true")
    cli.add_argument("dockerfiles", nargs="+")
    a = cli.parse_args()
    build_args = dict(kv.split("=", 1) for kv in a.build_arg)
    try:
        plans = [plan(f, build_args, a.context) for f in a.dockerfiles]
    except Refused as e:
        sys.exit(f"refused: {e}")
    except OSError as e:
        sys.exit(f"cannot read: {e}")
    if a.cmd == "plan":
        print(json.dumps(plans[0], indent=1))
    elif a.json:
        print(json.dumps(plans, indent=1))
    else:
        for p in plans:
            print_plan(p)


if __name__ == "__main__":
    main()
