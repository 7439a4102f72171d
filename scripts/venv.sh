#!/usr/bin/env bash
# Create the project's virtualenv (.venv) with the given Python, installing Debian's venv module if needed.
# Usage: scripts/venv.sh PYTHON VENV_DIR
set -euo pipefail

python="${1:-python3}"
venv="${2:-.venv}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "PharmaCRM needs Python 3.11 or newer as '$python' (set PYTHON=... to choose another)." >&2
    exit 1
fi
if "$python" -m venv "$venv" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
# Debian's python3 ships venv's pip bootstrap separately (python3-venv / python3.11-venv).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    exec "$python" -m venv "$venv"
fi
echo "'$python -m venv' failed; install Debian's python3-venv (sudo apt-get install python3-venv)." >&2
exit 1
