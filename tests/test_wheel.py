"""The portable wheel (scripts/build_wheel.sh) installs into a fresh virtual environment with no
compiler on PATH and runs: the seed examples, a conv forward against numpy, a short MNIST fit,
the kernel sets, with the OpenMP runtime the wheel bundles.

FASTCNN_WHEEL=path/to/fastcnn-...-manylinux_...whl reuses a wheel built before; otherwise the
test builds one with scripts/build_wheel.sh (incremental when build/ holds the CMake tree)."""

import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from conftest import seed_example

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMOKE = pathlib.Path(__file__).resolve().parent / "wheel_smoke" / "smoke.py"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux wheels")]


def cpu_flags():
    with open("/proc/cpuinfo") as cpuinfo:
        return next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])


def expected_kernel_set():
    """The tier the dispatcher picks here (Linux lists a flag only where the OS enables its state)."""
    flags = cpu_flags()
    if all(flag in flags for flag in ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma")):
        return "avx512"
    return "avx2" if "avx2" in flags and "fma" in flags else "generic"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    given = os.environ.get("FASTCNN_WHEEL")
    if given:
        path = pathlib.Path(given)
        if not path.is_file():
            pytest.fail(f"FASTCNN_WHEEL={given!r} is not a file")
        return path
    result = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheel.sh")], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr[-5000:]
    path = pathlib.Path(result.stdout.strip().splitlines()[-1])
    return path if path.is_absolute() else ROOT / path


def test_wheel_is_manylinux_and_small(wheel):
    assert "-manylinux_" in wheel.name, wheel.name
    assert wheel.stat().st_size < 5 * 1024 * 1024


def test_wheel_installs_and_runs_without_a_compiler(wheel, tmp_path):
    examples = seed_example()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # Nothing but the fresh environment on PATH: no cc, c++, cmake, make. pip may take numpy from
    # its index (or cache) but only as a binary; fastcnn is the given wheel, never a source build.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "FASTCNN_KERNELS", "PYTHONSTARTUP")}
    env.update(PATH=str(venv / "bin"), CC="/bin/false", CXX="/bin/false", COLUMNS="80")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--only-binary=:all:", str(wheel)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert pathlib.Path(site_packages) != pathlib.Path(sysconfig.get_path("purelib"))

    expected = expected_kernel_set()
    smoke = subprocess.run([str(python), str(SMOKE), site_packages, expected, str(examples)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "wheel smoke passed" in smoke.stdout

    generic = subprocess.run([str(python), "-c", "import fastcnn; print(fastcnn.config.kernel_set())"], cwd=tmp_path,
                             env={**env, "FASTCNN_KERNELS": "generic"}, capture_output=True, text=True, timeout=120)
    assert generic.returncode == 0 and generic.stdout.strip() == "generic", generic.stdout + generic.stderr
