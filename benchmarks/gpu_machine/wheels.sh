#!/usr/bin/env bash
# The wheels a bare GPU machine needs for adl's GPU checks, for its Python (default 3.12), into .whl/
# (git-ignored): Ray (stripped of what the checks never load, so the whole set stays under ~50 MB),
# gymnasium and ale-py (Pong, through ale-py's own vector env: no opencv), and the few of their needs a
# torch image usually lacks. Versions are this project's own (read from .venv). `make gpu-wheels` runs it. What a torch image already has (numpy, pyyaml, requests,
# aiohttp, grpcio, protobuf, msgpack, click, filelock, pyarrow, pandas, psutil, tqdm, pillow,
# scikit-learn, matplotlib, pytest) is not fetched: see docs/gpu_checks.md.
#
#   benchmarks/gpu_machine/wheels.sh [PYTHON_VERSION] [DEST]
set -euo pipefail
py=${1:-3.12}
dest=${2:-.whl}
here=$(cd "$(dirname "$0")/../.." && pwd)
pip=("$here/.venv/bin/python" -m pip)
version() { "${pip[@]}" show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

names=(ray gymnasium Farama-Notifications cloudpickle ale-py jsonschema jsonschema-specifications referencing rpds-py)
mkdir -p "$dest"
for name in "${names[@]}"; do
  v=$(version "$name")
  [ -n "$v" ] || { echo "wheels.sh: $name is not installed in .venv (run make install first)" >&2; exit 1; }
  "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$name==$v"
done

# Ray: drop the Java jars, the dashboard's web client, RLlib, Serve, Data and the LLM libraries (adl's
# GPU checks start a local Ray without a dashboard and use core, Tune is not needed there), and the
# RECORD lines of what was dropped.
"$here/.venv/bin/python" - "$dest" <<'EOF'
import sys, zipfile
from pathlib import Path

DROP = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/serve/", "ray/data/", "ray/llm/")
for whl in Path(sys.argv[1]).glob("ray-*.whl"):  # rewritten in place, through a temporary file
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename.startswith(DROP):
                continue
            data = zin.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(l for l in lines if not l.startswith(DROP)).encode()
            zout.writestr(item, data)
    tmp.replace(whl)
    print(f"{whl.name}: {whl.stat().st_size / 2**20:.1f} MiB after stripping")
EOF
du -ch "$dest"/*.whl | tail -n 1
