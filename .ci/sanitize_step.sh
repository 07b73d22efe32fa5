# Lines for the integrator to append to .ci/run (not run on their own): the AddressSanitizer +
# UndefinedBehaviorSanitizer job. It runs in the CI virtual environment that .ci/run activated
# (numpy, pytest and hypothesis from fastcnn[test]); scripts/sanitize.sh builds the sanitized
# package into build/sanitize/ itself (scikit-build-core and pybind11 from PyPI), checks the canary
# ("sanitizer not active" otherwise) and runs the kernel and binding tests on it: 160 s from a
# clean checkout on the 2-core machine (119 s of it the build).
bash scripts/sanitize.sh
