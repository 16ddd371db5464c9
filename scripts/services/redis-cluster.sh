#!/usr/bin/env bash
# Start or stop a Redis Cluster of three masters (no replicas) for the tests: 127.0.0.1 only,
# free ports, append-only files on (so a restarted master keeps its data). Ports, pidfiles,
# nodes.conf files and logs are kept under $PENGUIFLOW_SERVICES_DIR/redis-cluster (default
# .services/redis-cluster); `stop` stops only the servers whose pidfiles are there.
#   bash scripts/services/redis-cluster.sh start|stop|url
#   bash scripts/services/redis-cluster.sh restart-master N
# `restart-master N` (N = 0, 1 or 2, in the order `url` lists them; master N holds the N-th
# third of the slots) stops master N with SIGTERM, so it finishes writing its append-only file,
# and starts it again on the same port with the same cluster identity: no failover happens
# (there are no replicas); while it is down, commands for its slots fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/redis-cluster"
MASTERS=3

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server/redis-cli are not installed; run: bash scripts/services/redis.sh start" \
        "(it installs them), or: sudo apt-get install redis-server" >&2
    exit 1
fi

# The pid of master $1 (0-based) if that process is still the server this script started.
node_pid() {
    local dir="$STATE/node$1" port
    port="$(cat "$dir/port" 2>/dev/null)" || return 1
    recorded_pid "$dir/redis.pid" "redis-server.*:$port\b"
}

answers() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}

cluster_ok() {
    redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q "^cluster_state:ok"
}

# Start master $1 from its folder (its port, bus port and nodes.conf are kept there).
launch() {
    local dir="$STATE/node$1"
    rm -f "$dir/redis.pid"
    redis-server --bind 127.0.0.1 --port "$(cat "$dir/port")" \
        --cluster-enabled yes --cluster-port "$(cat "$dir/bus-port")" \
        --cluster-config-file "$dir/nodes.conf" \
        --save "" --appendonly yes --appendfsync everysec \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --daemonize yes || return 1
    local port pid
    port="$(cat "$dir/port")"
    for _ in $(seq 1 100); do
        if pid="$(node_pid "$1")"; then
            if answers "$port"; then
                return 0
            fi
        elif [ -f "$dir/redis.pid" ]; then
            return 1 # the pidfile is there but not our server: it exited (port taken?)
        fi
        sleep 0.1
    done
    return 1
}

stop_node() {
    local pid
    if pid="$(node_pid "$1")"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -d "/proc/$pid" ] || return 0
            sleep 0.1
        done
        echo "redis cluster master $1 (pid $pid) did not stop within 10 s" >&2
        return 1
    fi
}

stop_all() {
    local i
    for i in $(seq 0 $((MASTERS - 1))); do
        stop_node "$i" || true
    done
    rm -rf "$STATE"
}

running() {
    local i
    for i in $(seq 0 $((MASTERS - 1))); do
        node_pid "$i" >/dev/null || return 1
        cluster_ok "$(cat "$STATE/node$i/port")" || return 1
    done
}

wait_cluster_ok() {
    local i
    for _ in $(seq 1 300); do
        local all=1
        for i in $(seq 0 $((MASTERS - 1))); do
            cluster_ok "$(cat "$STATE/node$i/port")" || all=0
        done
        [ "$all" = 1 ] && return 0
        sleep 0.1
    done
    return 1
}

# One attempt at a fresh cluster on free ports.
start_once() {
    local i addresses=()
    stop_all
    for i in $(seq 0 $((MASTERS - 1))); do
        mkdir -p "$STATE/node$i"
        free_port >"$STATE/node$i/port"
        free_port >"$STATE/node$i/bus-port"
        launch "$i" || return 1
        addresses+=("127.0.0.1:$(cat "$STATE/node$i/port")")
    done
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes \
        >"$STATE/create.log" 2>&1 || return 1
    wait_cluster_ok
}

url() {
    local i hosts=()
    for i in $(seq 0 $((MASTERS - 1))); do
        hosts+=("127.0.0.1:$(cat "$STATE/node$i/port")")
    done
    (IFS=,; echo "redis+cluster://${hosts[*]}")
}

case "${1:-}" in
    start)
        if running 2>/dev/null; then
            echo "redis cluster already running: $(url) (started here)" >&2
            exit 0
        fi
        for _ in 1 2 3; do
            if start_once; then
                echo "redis cluster ready: $(url)" >&2
                exit 0
            fi
        done
        log="$(cat "$STATE"/node*/redis.log "$STATE/create.log" 2>/dev/null | tail -20 || true)"
        stop_all
        echo "the redis cluster did not start (three tries); last log lines:" >&2
        echo "$log" >&2
        exit 1
        ;;
    stop)
        stop_all
        ;;
    url)
        if [ ! -f "$STATE/node0/port" ]; then
            echo "no redis cluster started from here; run: bash $0 start" >&2
            exit 1
        fi
        url
        ;;
    restart-master)
        n="${2:-}"
        case "$n" in
            0 | 1 | 2) ;;
            *)
                echo "usage: $0 restart-master N (N = 0, 1 or 2: the master's place in the URL)" >&2
                exit 2
                ;;
        esac
        if ! node_pid "$n" >/dev/null; then
            echo "master $n of the cluster started here is not running; run: bash $0 start" >&2
            exit 1
        fi
        stop_node "$n"
        launch "$n" || {
            echo "master $n did not start again; see $STATE/node$n/redis.log" >&2
            exit 1
        }
        if ! wait_cluster_ok; then
            echo "master $n is back but the cluster is not ok within 30 s" >&2
            exit 1
        fi
        echo "redis cluster master $n restarted on 127.0.0.1:$(cat "$STATE/node$n/port")" >&2
        ;;
    *)
        echo "usage: $0 start|stop|url|restart-master N" >&2
        exit 2
        ;;
esac
