#!/bin/sh
# A throw-away PostgreSQL 15 cluster for the benchmarks: port 55434, data in /tmp/bench-pg, tuned for a
# bulk load (fsync off: never use these settings for real data). Usage: bench/pg.sh start|stop
set -eu
BIN=/usr/lib/postgresql/15/bin
DATA=${BENCH_PG_DIR:-/tmp/bench-pg}
PORT=${BENCH_PG_PORT:-55434}
RUNAS=${BENCH_PG_USER:-pgbench}
as_user() { if [ "$(id -u)" = 0 ]; then su "$RUNAS" -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
case "${1:-start}" in
start)
  if [ "$(id -u)" = 0 ] && ! id "$RUNAS" >/dev/null 2>&1; then useradd -m "$RUNAS"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown "$RUNAS" "$DATA"
    as_user "$BIN/initdb -D $DATA -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null"
  fi
  as_user "$BIN/pg_ctl -D $DATA -l $DATA/log -w start -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=1GB \
    -c max_wal_size=8GB -c work_mem=32MB -c maintenance_work_mem=512MB'"
  psql -h 127.0.0.1 -p "$PORT" -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='pharmacrm'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE pharmacrm" >/dev/null
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/pharmacrm"
  ;;
stop) as_user "$BIN/pg_ctl -D $DATA -m fast stop" ;;
esac
