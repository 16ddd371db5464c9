#!/usr/bin/env bash
# Start or stop a Redis server for the tests: 127.0.0.1 only, on a free port (or
# $PENGUIFLOW_REDIS_PORT), nothing persisted. The port, pidfile and log are kept under
# $PENGUIFLOW_SERVICES_DIR/redis (default .services/redis); `stop` stops only the server whose
# pidfile is there, and `start` never reuses a server it did not start.
#   bash scripts/services/redis.sh start|stop|url
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/redis"

ensure_installed() {
    if command -v redis-server >/dev/null 2>&1; then
        return
    fi
    apt_install redis-server redis-server
    # The package starts a system instance on the default port; the tests use their own.
    (service redis-server stop || true) >/dev/null 2>&1
}

# The pid of the redis-server this script started and recorded, if it is still that process
# (a pidfile can outlive its server, and the pid be reused by something else).
our_pid() {
    local port
    port="$(cat "$STATE/port" 2>/dev/null)" || return 1
    recorded_pid "$STATE/redis.pid" "redis-server.*:$port\b"
}

# Start on port $1; true once our own process answers there.
start_on() {
    local port="$1" pid
    rm -f "$STATE/redis.pid"
    echo "$port" >"$STATE/port"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir "$STATE" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" \
        --daemonize yes || return 1
    for _ in $(seq 1 100); do
        if pid="$(our_pid)"; then
            if redis_answers "$port"; then
                return 0
            fi
        elif [ -f "$STATE/redis.pid" ]; then
            break # the pidfile is there but not our server: it exited (port taken?)
        fi
        sleep 0.1
    done
    if pid="$(our_pid)"; then
        kill "$pid" 2>/dev/null || true
    fi
    return 1
}

case "${1:-}" in
    start)
        ensure_installed
        mkdir -p "$STATE"
        if pid="$(our_pid)"; then
            if redis_answers "$(cat "$STATE/port")"; then
                echo "redis already running on 127.0.0.1:$(cat "$STATE/port") (started here)" >&2
                exit 0
            fi
            kill "$pid" 2>/dev/null || true # ours, but not answering: replace it
        fi
        ports="$(candidate_ports "${PENGUIFLOW_REDIS_PORT:-}" PENGUIFLOW_REDIS_PORT)"
        for port in $ports; do
            if start_on "$port"; then
                echo "redis ready on 127.0.0.1:$port" >&2
                exit 0
            fi
        done
        rm -f "$STATE/port"
        echo "redis did not start (tried ports: $(echo $ports)); see $STATE/redis.log" >&2
        exit 1
        ;;
    stop)
        if pid="$(our_pid)"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                [ -d "/proc/$pid" ] || break
                sleep 0.1
            done
        fi
        rm -f "$STATE/redis.pid" "$STATE/port"
        ;;
    url)
        if [ ! -f "$STATE/port" ]; then
            echo "no redis started from here; run: bash scripts/services/redis.sh start" >&2
            exit 1
        fi
        echo "redis://127.0.0.1:$(cat "$STATE/port")/0"
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
