#!/usr/bin/env bash
# The Python side of the test command: installs the Python packages the bindings, tests and notebooks need
# (PyPI, through pip), builds and installs the `ringlab` package from python/ (scikit-build-core + nanobind,
# linking the same CMake targets as the CLI), runs the pytest suite, and executes every notebook with
# nbclient. Exits non-zero on any failure. Called by scripts/test.sh; runs on its own as well.
#   scripts/test_python.sh          (JOBS=N to override the build parallelism, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
python="${PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore  # CI runs pip as root on purpose

scripts/setup.sh  # the Debian packages the C++ libraries build with (idempotent)

echo "== python: packages"
started=$SECONDS
"$python" -m pip install --quiet --disable-pip-version-check \
  "nanobind>=2.4" "scikit-build-core>=0.10" "numpy>=1.24" "pytest>=7" \
  "nbclient>=0.8" "ipykernel>=6" "matplotlib>=3.6" "nbformat>=5.7"

echo "== python: build and install ./python"
# The build dependencies were just installed, so the build needs no isolated environment; build/python
# keeps the CMake build between runs (a rebuild compiles only what changed).
export CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}"
"$python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --config-settings=build-dir="$root/build/python" ./python
echo "   packages, build and install: $((SECONDS - started)) s"

echo "== python: pytest"
# From the repository root, so that python/ringlab (no extension inside) does not shadow the installed package.
"$python" -m pytest -q -p no:cacheprovider python/tests

echo "== python: notebooks"
"$python" scripts/run_notebooks.py --timeout 120
echo "== python: all passed in $((SECONDS - started)) s"
