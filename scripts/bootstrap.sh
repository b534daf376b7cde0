#!/usr/bin/env bash
# Installs the locked environment into .venv (needs only Python 3.11 and pip).
# uv comes from PyPI into a private folder, so nothing outside the project is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
BOOT=".cache/uv-bootstrap"
PYTHON="$(command -v python3.11 || command -v python3)"
if [ ! -x "$BOOT/bin/uv" ] || ! "$BOOT/bin/uv" --version | grep -q "$UV_VERSION"; then
  echo "bootstrap: installing uv $UV_VERSION into $BOOT" >&2
  "$PYTHON" -m venv "$BOOT"
  "$BOOT/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
"$BOOT/bin/uv" sync --frozen --python "$PYTHON" --quiet
