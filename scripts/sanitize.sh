#!/usr/bin/env bash
# Builds fastcnn with AddressSanitizer + UndefinedBehaviorSanitizer (CMake's FASTCNN_SANITIZE, gcc's
# runtimes) into its own folder, proves the sanitizers are live with a deliberately faulty canary,
# then runs the kernel and binding tests on that build, with the default kernels and with
# FASTCNN_KERNELS=generic. Any sanitizer report aborts the test process, so the script fails.
#
#   bash scripts/sanitize.sh                 # uses python3 on PATH (a virtual environment's, say)
#   PYTHON=/path/to/python bash scripts/sanitize.sh
#
# The normal install is left alone: the sanitizer build goes to $FASTCNN_SANITIZE_DIR (default
# build/sanitize/: tools/ a virtual environment holding scikit-build-core and pybind11, cmake/ the
# CMake tree, kept so that a rerun recompiles only what changed, site/ the installed package) and
# the tests import it through PYTHONPATH. The running Python needs numpy, pytest and hypothesis
# (fastcnn[test] has them; the script installs any that is missing). Needs gcc with libasan.
#
# gcc rather than clang: gcc builds the released wheels, so the sanitized code is the code users
# run, with the same OpenMP runtime (libgomp; clang would bring libomp) and the same libstdc++;
# gcc's libasan and libubsan ship with the compiler, while clang is not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
unset FASTCNN_KERNELS  # the script picks the kernel sets itself (default, then generic)

# An absolute path: PATH gains the build tools' folder below, whose python3 has no numpy or pytest.
python="$(command -v "${PYTHON:-python3}")" || { echo "sanitize.sh: no ${PYTHON:-python3} on PATH" >&2; exit 1; }
work="${FASTCNN_SANITIZE_DIR:-build/sanitize}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
tools="$work/tools"
site="$work/site"
plugin_dir="$work/plugin"

fail() {
  echo "sanitize.sh: $*" >&2
  exit 1
}

# ---- tools: the test dependencies in the running Python, the build backend beside it ----------
missing=()
for module in numpy pytest hypothesis; do
  "$python" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
  "$python" -m pip install --quiet "${missing[@]}"
fi
# The build runs without pip's build isolation: an isolated build gets a fresh temporary
# pybind11 path each time, and CMake then recompiles everything (5 minutes here) instead of
# only what changed.
if ! "$tools/bin/python" -c "import scikit_build_core, pybind11" 2>/dev/null; then
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12"
fi
command -v cmake >/dev/null || "$tools/bin/python" -m pip install --quiet "cmake>=3.18"
command -v ninja >/dev/null || "$tools/bin/python" -m pip install --quiet ninja
export PATH="$tools/bin:$PATH"

# ---- build: every file of csrc with -fsanitize=address,undefined (see CMakeLists.txt) ----------
echo "== sanitizer build into $site" >&2
"$tools/bin/python" -m pip install --quiet --no-deps --no-build-isolation --upgrade --target "$site" . \
  -Ccmake.define.FASTCNN_SANITIZE=ON \
  -Cbuild-dir="$work/cmake/{wheel_tag}" \
  -Cinstall.strip=false
built=$SECONDS
module="$(ls "$site"/fastcnn/_core*.so)"

# Python is not linked against the sanitizer runtime, so it must be preloaded: the runtime that
# the module itself was linked with (ldd), and libstdc++ with it, or ASan cannot intercept
# __cxa_throw and aborts on the first C++ exception (every ValueError the bindings raise).
runtime_library() {
  ldd "$module" | awk -v name="$1.so" 'index($1, name) == 1 { print $3 }'
}
asan="$(runtime_library libasan)"
stdcxx="$(runtime_library libstdc++)"
[[ -n "$asan" && -n "$stdcxx" ]] || fail "sanitizer not active: $module is not linked with libasan and libstdc++"

# Only the Python processes get these (exported, they would also instrument awk, ldd, ...).
# detect_leaks=0: CPython frees little at exit, LeakSanitizer would report that. abort_on_error
# and halt_on_error: the first report kills the process, so pytest cannot carry on and pass.
# allocator_may_return_null=1: a huge allocation returns null (std::bad_alloc, MemoryError) as
# it does without ASan, instead of ASan's allocation-size-too-big abort. PYTHONMALLOC=malloc:
# Python objects come from malloc too, so an overrun into one is seen.
sanitized() {
  (cd "$work" && env \
    LD_PRELOAD="$asan $stdcxx${LD_PRELOAD:+ $LD_PRELOAD}" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:print_summary=1" \
    UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1" \
    PYTHONMALLOC=malloc \
    PYTHONPATH="$site:$plugin_dir${PYTHONPATH:+:$PYTHONPATH}" \
    "$@")
}

# ---- canary: a heap overflow and a signed overflow must be reported and must kill the process --
location="$(sanitized "$python" -c "import fastcnn; print(fastcnn.__file__)")"
[[ "$location" == "$site/"* ]] || fail "sanitizer not active: fastcnn imported from $location, not from $site"
canary() {
  local kind="$1" report="$2" output status
  set +e
  output="$(sanitized "$python" -c "import fastcnn._core as core; core._sanitizer_canary('$kind')" 2>&1)"
  status=$?
  set -e
  if ((status == 0)) || ! grep -q "$report" <<<"$output"; then
    printf '%s\n' "$output" | tail -n 20 >&2
    fail "sanitizer not active: the $kind canary exited with status $status without '$report'"
  fi
  echo "canary $kind: '$report' reported, exit status $status" >&2
}
canary heap-buffer-overflow "ERROR: AddressSanitizer: heap-buffer-overflow"
canary signed-overflow "runtime error: signed integer overflow"

# ---- tests ----------------------------------------------------------------------------------
# The kernel and binding tests. test_kernels.py, test_kernels_layers.py, test_kernels_merge.py,
# test_kernels_lanes.py, test_fused_conv_pool.py, test_kernels_depthwise.py, test_kernels_optimizer.py,
# test_kernels_shape_layers.py and test_kernels_normalization.py run every kernel set
# of this CPU (reference, generic, avx2, avx512) by name in one process, whatever FASTCNN_KERNELS
# says: they run once.
# The tests that use the active kernel set (bad input; the boundary and fuzz files, which join
# when present) run with the default set and again with FASTCNN_KERNELS=generic. Tests that need
# TensorFlow are deselected (its parity checks run in the normal suite; here it would only add an
# uninstrumented 1 GB import); see the plugin below.
every_tier_tests=(tests/test_kernels.py tests/test_kernels_layers.py tests/test_kernels_merge.py
                  tests/test_kernels_lanes.py tests/test_fused_conv_pool.py tests/test_kernels_depthwise.py
                  tests/test_kernels_shape_layers.py tests/test_kernels_normalization.py tests/test_kernels_optimizer.py)
active_set_tests=(tests/test_bad_input.py)
for optional in tests/test_binding_boundary.py tests/test_fuzz_kernels.py; do
  if [[ -f "$optional" ]]; then active_set_tests+=("$optional"); fi
done
mkdir -p "$plugin_dir"
cat >"$plugin_dir/sanitize_deselect.py" <<'PY'
"""pytest plugin of scripts/sanitize.sh: deselects the tests that use the `tf` fixture."""


def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if "tf" not in getattr(item, "fixturenames", ())]
    deselected = [item for item in items if "tf" in getattr(item, "fixturenames", ())]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
PY
# pytest runs from the repository root (its configuration and tests/ live there) but the
# repository root must stay off sys.path, or `import fastcnn` finds the uncompiled source folder.
run_pytest() {
  sanitized "$python" -c '
import os, sys
sys.path[:] = [entry for entry in sys.path if entry not in ("", ".", os.getcwd())]
os.chdir(sys.argv[1])
import pytest
sys.exit(pytest.main(sys.argv[2:]))' "$PWD" -p sanitize_deselect -p no:cacheprovider --capture=sys -q "$@"
}

echo "== tests, default kernels: ${every_tier_tests[*]} ${active_set_tests[*]}" >&2
run_pytest "${every_tier_tests[@]}" "${active_set_tests[@]}"
default_done=$SECONDS
echo "== tests, FASTCNN_KERNELS=generic: ${active_set_tests[*]}" >&2
FASTCNN_KERNELS=generic run_pytest "${active_set_tests[@]}"
finished=$SECONDS

echo "sanitize.sh: passed; build $((built - started)) s, default kernels $((default_done - built)) s," \
  "generic kernels $((finished - default_done)) s, total $((finished - started)) s" >&2
