#!/usr/bin/env bash
# MPI for tests/test_distributed.py (real `mpirun -np 2` on loopback): Open MPI from Debian's
# packages when mpirun is missing, then mpi4py (fastcnn's `mpi` extra) into the active venv.
# .ci/run runs this after activating its venv (python is the venv's) and before
# `pip install ".[test]" && pytest`:
#     bash .ci/mpi_step.sh
# mpi4py is installed alone, not as `pip install ".[mpi]"`, so the package is built only once (by
# the test install that follows). Under CI (CI=true) the MPI tests fail, never skip, when mpirun or
# mpi4py is missing; FASTCNN_SKIP_MPI=1 skips them on purpose.
set -euo pipefail
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then privileged=(); else privileged=(sudo); fi
  "${privileged[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${privileged[@]}" apt-get install -y -qq --no-install-recommends \
    openmpi-bin libopenmpi-dev
fi
mpirun --version 2>&1 | sed -n 1p
python -m pip install --quiet "mpi4py>=4"
python -c "import mpi4py; print('mpi4py', mpi4py.__version__)"
