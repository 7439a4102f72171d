#!/usr/bin/env bash
# The two pytest runs of `make test`, started by scripts/test.sh inside scripts/pg-test-cluster.sh (DATABASE_URL
# names the throw-away cluster). The migrations run once per database, SQLite and PostgreSQL at once on a core
# each, into a template that every test worker copies (tests/conftest.py, PHARMACRM_TEST_TEMPLATE) instead of
# migrating its own database: about 35 s of CPU per worker and database saved. Should a template fail to build,
# that run's workers migrate for themselves and show the error.
# Exits non-zero when either run fails; extra arguments go to both runs.
set -uo pipefail

workers="${PYTEST_WORKERS:-2}"
# a third worker on PostgreSQL was measured no faster (18:29 against 16:36 with two): the cores are the limit
pg_workers="${PYTEST_PG_WORKERS:-2}"
slowest="--durations=${PYTEST_SLOWEST:-15}"
step() { printf '\n== %s\n' "$*"; }

pg_url="$DATABASE_URL"
pg_template=pharmacrm_template
sqlite_template="$PHARMACRM_VAR_DIR/template.sqlite3"

step "migrations, once per database (templates for the test workers)"
env -u DATABASE_URL SQLITE_PATH="$sqlite_template" python manage.py migrate -v0 </dev/null &
sqlite_build=$!
pg_ok=0
{ psql -qX "$pg_url" -c "CREATE DATABASE $pg_template" \
    && DATABASE_URL="${pg_url%/*}/$pg_template" python manage.py migrate -v0 </dev/null; } || pg_ok=$?
sqlite_ok=0
wait "$sqlite_build" || sqlite_ok=$?

failed=()
step "pytest on SQLite"
template=""
[ "$sqlite_ok" = 0 ] && template="$sqlite_template"
env -u DATABASE_URL PHARMACRM_TEST_TEMPLATE="$template" \
    python -m pytest -n "$workers" -q "$slowest" "$@" || failed+=("pytest on SQLite")

step "pytest on PostgreSQL"
template=""
[ "$pg_ok" = 0 ] && template="$pg_template"
PHARMACRM_TEST_TEMPLATE="$template" \
    python -m pytest -n "$pg_workers" -q "$slowest" "$@" || failed+=("pytest on PostgreSQL")

if [ ${#failed[@]} -gt 0 ]; then
    printf -v joined '%s, ' "${failed[@]}"
    echo "${joined%, }" >"${TEST_SUITES_FAILED:-/dev/null}"
    exit 1
fi
