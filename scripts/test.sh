#!/usr/bin/env bash
# `make test`: lint, Django's checks, then the whole pytest suite (browser tests included) on SQLite
# and on a throw-away PostgreSQL cluster. Exits non-zero on any failure.
# Extra arguments go to both pytest runs, e.g. scripts/test.sh tests/customers -k search
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac  # VENV=/abs/path/.venv works too
export PATH="$VENV/bin:$PATH"

# A fresh data dir per run: the tests never touch var/ (demo data, keys) of `make run`.
var="$(mktemp -d "${TMPDIR:-/tmp}/pharmacrm-test.XXXXXX")"
trap 'rm -rf "$var"' EXIT
export PHARMACRM_VAR_DIR="$var"
mkdir -p "$var/static"  # WhiteNoise warns in every test when STATIC_ROOT is missing
unset DATABASE_URL REDIS_URL PHARMACRM_PRODUCTION
export DJANGO_SETTINGS_MODULE=pharmacrm.settings
# Python keeps the compiled modules (__pycache__, ignored by git): each of the run's processes — the test workers,
# the processes tests start, the template migrations — otherwise compiled the project's and the tests' 180,000 lines
# again (about 1.5 s per process start, and the rewrite of every test module in each worker). Many machines set
# PYTHONDONTWRITEBYTECODE in the environment (container images do); it is not wanted here.
unset PYTHONDONTWRITEBYTECODE

step() { printf '\n== %s\n' "$*"; }
# Every step runs even when an earlier one fails, so that one run shows every failure.
failed=()

step "ruff check"
ruff check . || failed+=("ruff")

step "manage.py check; makemigrations --check"
python manage.py check
python manage.py makemigrations --check --dry-run || failed+=("makemigrations --check")
# Create the secret key and the key ring once, before parallel workers would race to create them.
python -c 'import django; django.setup(); from pharmacrm.core import crypto; crypto.keyring()' \
    </dev/null

# Both pytest runs (SQLite, then PostgreSQL) inside one throw-away PostgreSQL cluster: scripts/test-suites.sh
# migrates a template per database once, and the workers copy it.
suites_failed="$var/suites-failed"
CONN_MAX_AGE=0 TEST_SUITES_FAILED="$suites_failed" scripts/pg-test-cluster.sh scripts/test-suites.sh "$@" \
    || failed+=("$(cat "$suites_failed" 2>/dev/null || echo "pytest")")

# On success pytest's own summary stays the last line of the output.
if [ ${#failed[@]} -gt 0 ]; then
    printf -v joined '%s, ' "${failed[@]}"
    step "FAILED: ${joined%, }"
    exit 1
fi
