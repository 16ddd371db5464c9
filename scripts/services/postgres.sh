#!/usr/bin/env bash
# Start or stop the PostgreSQL server the tests use: Debian's server binaries, run as user
# postgres when we are root (it refuses to run as root), 127.0.0.1 only, port
# $PENGUIFLOW_PG_PORT (default 5439), data under .services/postgres (trust auth, throwaway).
#   bash scripts/services/postgres.sh start|stop|url
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${PENGUIFLOW_PG_PORT:-5439}"
DIR="$PWD/.services/postgres"
DATABASE="penguiflow_test"

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_installed() {
    if [ -n "$(find_bin)" ] && [ -x "$(find_bin)/initdb" ]; then
        return
    fi
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "PostgreSQL is not installed; install it with: sudo apt-get install postgresql" >&2
        exit 1
    fi
    echo "installing postgresql from Debian's packages..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    (service postgresql stop || true) >/dev/null 2>&1
}

case "${1:-}" in
    start)
        ensure_installed
        BIN="$(find_bin)"
        mkdir -p "$DIR"
        if [ "$(id -u)" = "0" ]; then
            chown postgres:postgres "$DIR"
        fi
        chmod 700 "$DIR"
        if as_owner "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
            echo "postgres already running on 127.0.0.1:$PORT" >&2
            exit 0
        fi
        if [ ! -f "$DIR/data/PG_VERSION" ]; then
            as_owner "$BIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 >/dev/null
        fi
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >/dev/null
        if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
            as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DATABASE"
        fi
        echo "postgres ready on 127.0.0.1:$PORT" >&2
        ;;
    stop)
        BIN="$(find_bin)"
        if [ -n "$BIN" ] && [ -f "$DIR/data/PG_VERSION" ]; then
            as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
        fi
        ;;
    url)
        echo "postgresql://postgres@127.0.0.1:$PORT/$DATABASE"
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
