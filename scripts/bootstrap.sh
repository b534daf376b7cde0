#!/usr/bin/env bash
# Installs the locked environment into .venv (needs only Python 3.11 and pip).
# uv comes from PyPI into a private folder; outside the project only the CLV models'
# compiled-code cache is written (ULM_CACHE_DIR, default ~/.cache/ulm).
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
# compile the CLV models' C code once now, not in the first pipeline run (ULM_CACHE_DIR,
# default ~/.cache/ulm; skipped once done)
CACHE="${ULM_CACHE_DIR:-$HOME/.cache/ulm}"
if [ ! -f "$CACHE/pytensor/.warm" ]; then
  echo "bootstrap: compiling the CLV models once (about half a minute)" >&2
  ULM_CACHE_DIR="$CACHE" .venv/bin/python -W ignore -c "from ml.clv import warm_up; warm_up()" \
    >/dev/null 2>&1 && touch "$CACHE/pytensor/.warm" \
    || echo "bootstrap: warning: the CLV warm-up failed; the first run will compile instead" >&2
fi
