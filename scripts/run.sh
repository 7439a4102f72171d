#!/usr/bin/env bash
# `make run`: migrate, load the demo data once, then serve the web app (gunicorn) and the Huey worker until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
# links in e-mails (survey, status, notifications) point at the address this run serves, unless set
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
VENV="${VENV:-.venv}"
VAR="${PHARMACRM_VAR_DIR:-$PWD/var}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac  # VENV=/abs/path/.venv works too
export PATH="$VENV/bin:$PATH"
mkdir -p "$VAR/logs"

if ! python - "$PORT" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: old TIME_WAIT connections are fine
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
then
    echo "Port $PORT is already in use; choose another one, e.g.  PORT=8010 make run" >&2
    exit 1
fi

# The demo data goes in once per database: a new SQLite file gets it again. The stamp holds the demo's
# version: a database made before later features brought their demo records gets those (each part of the
# demo loads once, so re-running it adds only what is missing).
DEMO_VERSION=5
db_file="${SQLITE_PATH:-$VAR/pharmacrm.sqlite3}"
stamp="$VAR/.demo-loaded"
[ -n "${DATABASE_URL:-}" ] || [ -e "$db_file" ] || rm -f "$stamp"

demo=()
if [ -n "${DATABASE_URL:-}" ]; then
    echo "DATABASE_URL is set: no demo data is loaded into that database."
elif [ "$(cat "$stamp" 2>/dev/null)" != "$DEMO_VERSION" ]; then
    demo=(--demo)
fi
python scripts/prepare_run.py "${demo[@]}"
[ ${#demo[@]} -eq 0 ] || echo "$DEMO_VERSION" > "$stamp"

# Without a mail server configured, the embedded mode writes outgoing mail (replies to customers,
# notifications) as files under var/mail/ instead of failing against a port 25 nobody listens on.
if [ -z "${EMAIL_HOST:-}" ] && [ -z "${EMAIL_BACKEND:-}" ]; then
    export EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend EMAIL_FILE_PATH="$VAR/mail"
    mkdir -p "$VAR/mail"
fi

pharmacrm run_huey >>"$VAR/logs/huey.log" 2>&1 &
huey_pid=$!

stop() {
    trap - INT TERM EXIT
    if kill -0 "$huey_pid" 2>/dev/null; then
        kill -INT "$huey_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$huey_pid" 2>/dev/null || break; sleep 0.5; done
        kill -TERM "$huey_pid" 2>/dev/null || true
    fi
    echo "PharmaCRM stopped."
}
trap stop INT TERM EXIT

printf '\n  PharmaCRM is running at  http://127.0.0.1:%s   (Ctrl-C stops the web server and the worker)\n\n' "$PORT"
if [ -z "${DATABASE_URL:-}" ]; then
    # who needs a one-time code, as the demo wrote it: its "  <user>: <secret>   otpauth://…" lines
    # (admin, auditor and pv at sign-in; the manager to sign approvals)
    totp_users=$(sed -n 's/^  \([^ :]*\): [A-Z2-7=]*  *otpauth:.*/\1/p' "$VAR/demo-credentials.txt" 2>/dev/null \
        | paste -sd ' ' - || true)
    cat <<MSG
  Demo users: admin manager kam agent expert support aftersales rep pv analyst auditor
  Their password, and the TOTP secrets of ${totp_users:-the users who need one} (who also enter a one-time
  code from an authenticator app: to sign in, or to sign approvals), are in $VAR/demo-credentials.txt
MSG
    [ -z "${EMAIL_FILE_PATH:-}" ] || echo "  Outgoing mail (no EMAIL_HOST set) is written to $EMAIL_FILE_PATH/"
fi
printf '  API: http://127.0.0.1:%s/api/v1/ (docs at /api/docs/)   Worker log: %s\n\n' "$PORT" "$VAR/logs/huey.log"

gunicorn pharmacrm.wsgi --bind "127.0.0.1:$PORT" --workers 2 --threads 4 --timeout 120 \
    --log-level warning --error-logfile -
