#!/usr/bin/env bash
# Run a command against a throw-away PostgreSQL cluster: initdb into a temp dir, start it on a free
# 127.0.0.1 port (trust auth there only, fsync off), export DATABASE_URL, run the command, stop and delete.
# Usage: scripts/pg-test-cluster.sh COMMAND [ARGS...]
set -euo pipefail

pgbin="$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1 || true)"
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    echo "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)." >&2
    exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/pharmacrm-pg.XXXXXX")"
run_as=()
if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: the cluster belongs to the postgres user (or nobody).
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || owner=nobody
    chown "$owner" "$dir"
    run_as=(runuser -u "$owner" --)
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

stop() {
    "${run_as[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${run_as[@]}" "$pgbin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 --no-sync -A reject \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
# Only TCP on 127.0.0.1; the socket sits in the private temp dir.
cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA
# A throw-away cluster: no durability (fsync, synchronous commit, full pages), no WAL beyond crash recovery, no
# autovacuum (each test's rows are rolled back) and no JIT compilation of queries. The last four took the service
# desk's 1,042 tests from 136–142 s to 128–135 s (session 51); PG_TEST_SETTINGS replaces them.
"${run_as[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
     -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB \
     ${PG_TEST_SETTINGS:--c jit=off -c autovacuum=off -c wal_level=minimal -c max_wal_senders=0}" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres pharmacrm

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/pharmacrm"
# pg_dump / pg_restore of the server's own version come first on PATH (backup tests use them).
export PATH="$pgbin:$PATH"
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') test cluster on 127.0.0.1:$port"
"$@"
