#!/usr/bin/env bash
# Start or stop the Redis server the tests use: 127.0.0.1 only, port $PENGUIFLOW_REDIS_PORT
# (default 6390), data under .services/redis, nothing persisted between runs.
#   bash scripts/services/redis.sh start|stop|url
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${PENGUIFLOW_REDIS_PORT:-6390}"
DIR=".services/redis"

ensure_installed() {
    if command -v redis-server >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "redis-server is not installed; install it with: sudo apt-get install redis-server" >&2
        exit 1
    fi
    echo "installing redis-server from Debian's packages..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The package starts a system instance on the default port; the tests use their own.
    (service redis-server stop || true) >/dev/null 2>&1
}

case "${1:-}" in
    start)
        ensure_installed
        mkdir -p "$DIR"
        if redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
            echo "redis already running on 127.0.0.1:$PORT" >&2
            exit 0
        fi
        redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no \
            --dir "$PWD/$DIR" --pidfile "$PWD/$DIR/redis.pid" --logfile "$PWD/$DIR/redis.log" \
            --daemonize yes
        for _ in $(seq 1 50); do
            if redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
                echo "redis ready on 127.0.0.1:$PORT" >&2
                exit 0
            fi
            sleep 0.1
        done
        echo "redis did not start; see $DIR/redis.log" >&2
        exit 1
        ;;
    stop)
        if command -v redis-cli >/dev/null 2>&1; then
            redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
        fi
        ;;
    url)
        echo "redis://127.0.0.1:$PORT/0"
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
