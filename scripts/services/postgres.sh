#!/usr/bin/env bash
# Start or stop a PostgreSQL server for the tests: Debian's server binaries, 127.0.0.1 only, on
# a free port (or $PENGUIFLOW_POSTGRES_PORT), trust auth, a `penguiflow_test` database, fsync
# off: a throwaway cluster, removed by `stop`.
#
# The cluster lives in a folder of its own under /tmp (`mktemp -d`), owned by the user the
# server runs as: `postgres` when started as root (the server refuses to run as root), the
# invoking user otherwise. A checkout may sit where that user cannot enter (under /root, or a
# 0700 temporary folder), so nothing the server touches is inside it. The cluster's folder and
# port are recorded under $PENGUIFLOW_SERVICES_DIR/postgres (default .services/postgres), and
# `stop` stops and removes that cluster only.
#   bash scripts/services/postgres.sh start|stop|url
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/postgres"
DATABASE="penguiflow_test"
# PENGUIFLOW_PG_PORT is the name this script used to read; both work.
CHOSEN_PORT="${PENGUIFLOW_POSTGRES_PORT:-${PENGUIFLOW_PG_PORT:-}}"

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_installed() {
    if [ -n "$(find_bin)" ] && [ -x "$(find_bin)/initdb" ]; then
        return
    fi
    apt_install PostgreSQL postgresql
    (service postgresql stop || true) >/dev/null 2>&1
}

# Run a server binary as the cluster's owner, from inside the cluster's folder (the owner may
# not be allowed to stand in the caller's working directory).
as_owner() {
    local cluster="$1"
    shift
    if [ "$(id -u)" = "0" ]; then
        (cd "$cluster" && runuser -u postgres -- "$@")
    else
        (cd "$cluster" && "$@")
    fi
}

recorded_cluster() {
    local cluster
    cluster="$(cat "$STATE/cluster" 2>/dev/null)" || return 1
    [ -n "$cluster" ] && [ -d "$cluster" ] || return 1
    echo "$cluster"
}

# Stop the recorded cluster's server and delete the cluster (only a folder this script made).
remove_cluster() {
    local cluster="$1" bin
    bin="$(find_bin)"
    if [ -n "$bin" ] && [ -f "$cluster/data/PG_VERSION" ]; then
        as_owner "$cluster" "$bin/pg_ctl" -D "$cluster/data" -m fast -w stop >/dev/null 2>&1 ||
            true
    fi
    case "$cluster" in
        /tmp/penguiflow-postgres.*) rm -rf "$cluster" ;;
    esac
    rm -f "$STATE/cluster" "$STATE/port" "$STATE/initdb.log"
}

# Make a cluster and start it on port $1; true once it accepts connections.
start_on() {
    local port="$1" bin cluster
    bin="$(find_bin)"
    cluster="$(mktemp -d /tmp/penguiflow-postgres.XXXXXX)"
    chmod 700 "$cluster"
    if [ "$(id -u)" = "0" ]; then
        chown postgres:postgres "$cluster"
    fi
    echo "$cluster" >"$STATE/cluster" # recorded first: `stop` cleans up a half-made one
    echo "$port" >"$STATE/port"
    if ! as_owner "$cluster" "$bin/initdb" -D "$cluster/data" -A trust -U postgres -E UTF8 \
        --no-sync >"$STATE/initdb.log" 2>&1; then
        cat "$STATE/initdb.log" >&2
        remove_cluster "$cluster"
        return 1
    fi
    if ! as_owner "$cluster" "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w \
        -t 30 -o "-c listen_addresses=127.0.0.1 -p $port -k $cluster -c fsync=off" \
        start >/dev/null; then
        tail -n 20 "$cluster/server.log" >&2 || true
        remove_cluster "$cluster"
        return 1
    fi
    as_owner "$cluster" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DATABASE"
}

case "${1:-}" in
    start)
        ensure_installed
        mkdir -p "$STATE"
        if cluster="$(recorded_cluster)"; then
            if as_owner "$cluster" "$(find_bin)/pg_ctl" -D "$cluster/data" status >/dev/null 2>&1; then
                echo "postgres already running on 127.0.0.1:$(cat "$STATE/port") (started" \
                    "here)" >&2
                exit 0
            fi
            remove_cluster "$cluster" # left over from a run that did not stop it
        fi
        ports="$(candidate_ports "$CHOSEN_PORT" PENGUIFLOW_POSTGRES_PORT)"
        for port in $ports; do
            if start_on "$port"; then
                echo "postgres ready on 127.0.0.1:$port" >&2
                exit 0
            fi
        done
        echo "postgres did not start (tried ports: $(echo $ports))" >&2
        exit 1
        ;;
    stop)
        if cluster="$(recorded_cluster)"; then
            remove_cluster "$cluster"
        fi
        rm -f "$STATE/cluster" "$STATE/port"
        ;;
    url)
        if [ ! -f "$STATE/port" ]; then
            echo "no postgres started from here; run: bash scripts/services/postgres.sh start" >&2
            exit 1
        fi
        echo "postgresql://postgres@127.0.0.1:$(cat "$STATE/port")/$DATABASE"
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
