#!/bin/sh
# Install the SigmaSight code location with its locked dependencies into a new virtualenv.
#
#   VENV=/opt/venv sh deploy/install.sh        (deploy/Dockerfile runs exactly this)
#
# Every dependency comes from deploy/requirements.lock, pinned and hash-checked (--require-hashes
# is implied by the hashes in the file); the package itself is installed without dependencies, and
# `uv pip check` proves the lock satisfies pyproject.toml. uv (pinned) is installed into a throw-away
# virtualenv and removed afterwards, so it is not part of $VENV. Nothing here reads a secret.
# sigmasight_assets_tests/test_deploy.py runs this script in a fresh directory.
set -eu

SRC=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
VENV=${VENV:?set VENV to the virtualenv to create, e.g. VENV=/opt/venv}
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9

TOOLS=$(mktemp -d)
trap 'rm -rf "$TOOLS"' EXIT
"$PYTHON" -m venv "$TOOLS/uv"
"$TOOLS/uv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
UV="$TOOLS/uv/bin/uv"

"$PYTHON" -m venv --without-pip "$VENV"
"$UV" pip install --python "$VENV/bin/python" --no-deps --require-hashes -r "$SRC/deploy/requirements.lock"
"$UV" pip install --python "$VENV/bin/python" --no-deps "$SRC"
"$UV" pip check --python "$VENV/bin/python"
