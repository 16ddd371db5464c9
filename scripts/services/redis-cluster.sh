#!/usr/bin/env bash
# Start or stop a Redis Cluster of three masters for the tests: 127.0.0.1 only, free ports,
# append-only files on (so a restarted master keeps its data). Without replicas by default;
# PENGUIFLOW_REDIS_CLUSTER_REPLICAS=1 gives each master a replica (six servers, kept apart
# under redis-cluster-replicas/, with a 2 s node timeout so a failover takes seconds). Ports,
# pidfiles, nodes.conf files and logs are kept under $PENGUIFLOW_SERVICES_DIR/redis-cluster
# (default .services/redis-cluster); `stop` stops only the servers whose pidfiles are there.
#   bash scripts/services/redis-cluster.sh start|stop|url
#   bash scripts/services/redis-cluster.sh restart-master N
#   PENGUIFLOW_REDIS_CLUSTER_REPLICAS=1 bash scripts/services/redis-cluster.sh kill-master N
# `restart-master N` (N = 0, 1 or 2, in the order `url` lists them; master N holds the N-th
# third of the slots) stops master N with SIGTERM, so it finishes writing its append-only file,
# and starts it again on the same port with the same cluster identity: no failover happens
# (there are no replicas); while it is down, commands for its slots fail.
# `kill-master N` (with replicas) SIGKILLs the server that is master of the N-th third of the
# slots now (a crash), waits until its replica has taken over and every node says the cluster
# is ok, then starts the killed server again, which rejoins as the new master's replica.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
MASTERS=3
REPLICAS="${PENGUIFLOW_REDIS_CLUSTER_REPLICAS:-0}"
case "$REPLICAS" in
    0) STATE="$SERVICES_DIR/redis-cluster" ;;
    1) STATE="$SERVICES_DIR/redis-cluster-replicas" ;;
    *)
        echo "PENGUIFLOW_REDIS_CLUSTER_REPLICAS must be 0 or 1, not $REPLICAS" >&2
        exit 2
        ;;
esac
NODES=$((MASTERS * (1 + REPLICAS)))

require_redis_tools

# The pid of master $1 (0-based) if that process is still the server this script started.
node_pid() {
    local dir="$STATE/node$1" port
    port="$(cat "$dir/port" 2>/dev/null)" || return 1
    recorded_pid "$dir/redis.pid" "redis-server.*:$port\b"
}

cluster_ok() {
    redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q "^cluster_state:ok"
}

# With replicas: a failover within seconds, and a replica's first sync at once (Redis 7 waits
# 5 s for more replicas by default, and a master killed in that time takes the data with it).
FAILOVER_OPTIONS=()
if [ "$REPLICAS" != 0 ]; then
    FAILOVER_OPTIONS=(--cluster-node-timeout 2000 --repl-diskless-sync-delay 0)
fi

# Start master $1 from its folder (its port, bus port and nodes.conf are kept there).
launch() {
    local dir="$STATE/node$1"
    rm -f "$dir/redis.pid"
    redis-server --bind 127.0.0.1 --port "$(cat "$dir/port")" \
        --cluster-enabled yes --cluster-port "$(cat "$dir/bus-port")" \
        --cluster-config-file "$dir/nodes.conf" \
        --save "" --appendonly yes --appendfsync everysec \
        "${FAILOVER_OPTIONS[@]}" \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --daemonize yes || return 1
    local port pid
    port="$(cat "$dir/port")"
    for _ in $(seq 1 100); do
        if pid="$(node_pid "$1")"; then
            if redis_answers "$port"; then
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
        echo "redis cluster node $1 (pid $pid) did not stop within 10 s" >&2
        return 1
    fi
}

stop_all() {
    local i
    for i in $(seq 0 $((NODES - 1))); do
        stop_node "$i" || true
    done
    rm -rf "$STATE"
}

running() {
    local i
    for i in $(seq 0 $((NODES - 1))); do
        node_pid "$i" >/dev/null || return 1
        cluster_ok "$(cat "$STATE/node$i/port")" || return 1
    done
    replicas_synced
}

# Every master has its replicas online (after a full sync): ready to fail over without loss.
replicas_synced() {
    local i port info
    [ "$REPLICAS" = 0 ] && return 0
    for i in $(seq 0 $((NODES - 1))); do
        port="$(cat "$STATE/node$i/port")"
        info="$(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null)" || return 1
        if echo "$info" | grep -q "^role:master"; then
            [ "$(echo "$info" | grep -c "^slave[0-9]*:.*state=online")" -ge "$REPLICAS" ] ||
                return 1
        fi
    done
}

wait_cluster_ok() {
    local i
    for _ in $(seq 1 300); do
        local all=1
        for i in $(seq 0 $((NODES - 1))); do
            node_pid "$i" >/dev/null || continue # (kill-master: the killed one is away)
            cluster_ok "$(cat "$STATE/node$i/port")" || all=0
        done
        [ "$all" = 1 ] && replicas_synced && return 0
        sleep 0.1
    done
    return 1
}

# The port of the master serving slot $1 (not marked failing), as the first live node whose
# cluster is ok sees it in CLUSTER NODES.
slot_master_port() {
    local i port answer
    for i in $(seq 0 $((NODES - 1))); do
        node_pid "$i" >/dev/null || continue
        port="$(cat "$STATE/node$i/port")"
        cluster_ok "$port" || continue
        answer="$(redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null)" || continue
        echo "$answer" | python3 -c 'import sys
slot = int(sys.argv[1])
for line in sys.stdin:
    fields = line.split()
    if len(fields) < 9 or "master" not in fields[2].split(",") or "fail" in fields[2]:
        continue
    for part in fields[8:]:
        if part.startswith("["):
            continue
        low, _, high = part.partition("-")
        if int(low) <= slot <= int(high or low):
            print(fields[1].split("@")[0].rsplit(":", 1)[1])
            sys.exit(0)
sys.exit(1)' "$1" && return 0
    done
    return 1
}

# Exit with the usage line "$0 $2" unless $1 is a master's number (0, 1 or 2).
require_master_number() {
    case "$1" in
        0 | 1 | 2) ;;
        *)
            echo "usage: $0 $2" >&2
            exit 2
            ;;
    esac
}

# One attempt at a fresh cluster on free ports.
start_once() {
    local i addresses=()
    stop_all
    for i in $(seq 0 $((NODES - 1))); do
        mkdir -p "$STATE/node$i"
        free_port >"$STATE/node$i/port"
        free_port >"$STATE/node$i/bus-port"
        launch "$i" || return 1
        addresses+=("127.0.0.1:$(cat "$STATE/node$i/port")")
    done
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas "$REPLICAS" --cluster-yes \
        >"$STATE/create.log" 2>&1 || return 1
    wait_cluster_ok
}

url() {
    local i hosts=()
    for i in $(seq 0 $((NODES - 1))); do
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
        require_master_number "$n" "restart-master N (N = 0, 1 or 2: the master's place in the URL)"
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
    kill-master)
        n="${2:-}"
        require_master_number "$n" "kill-master N (N = 0, 1 or 2: the N-th third of the slots)"
        if [ "$REPLICAS" = 0 ]; then
            echo "kill-master needs replicas to fail over to: set" \
                "PENGUIFLOW_REDIS_CLUSTER_REPLICAS=1 (restart-master restarts without one)" >&2
            exit 2
        fi
        if ! running 2>/dev/null; then
            echo "the cluster started here is not running (or not ready); run: bash $0 start" >&2
            exit 1
        fi
        # The middle of the N-th third: integer division puts N * 16384 / 3 on the last slot
        # of the third before it for N = 2.
        slot=$(((2 * n + 1) * 16384 / (2 * MASTERS)))
        old="$(slot_master_port "$slot")"
        victim=""
        for i in $(seq 0 $((NODES - 1))); do
            [ "$(cat "$STATE/node$i/port")" = "$old" ] && victim="$i"
        done
        if [ -z "$victim" ]; then
            echo "no node started here is the master of slot $slot" >&2
            exit 1
        fi
        pid="$(node_pid "$victim")"
        kill -KILL "$pid"
        for _ in $(seq 1 300); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        new=""
        for _ in $(seq 1 300); do
            new="$(slot_master_port "$slot" || true)"
            [ -n "$new" ] && [ "$new" != "$old" ] && break
            sleep 0.1
        done
        if [ -z "$new" ] || [ "$new" = "$old" ]; then
            echo "no replica took over slot $slot within 30 s after killing 127.0.0.1:$old" >&2
            exit 1
        fi
        launch "$victim" || {
            echo "the killed node did not start again; see $STATE/node$victim/redis.log" >&2
            exit 1
        }
        if ! wait_cluster_ok; then
            echo "failed over to 127.0.0.1:$new, but the cluster is not whole and synced" \
                "within 30 s after the old master came back" >&2
            exit 1
        fi
        echo "master 127.0.0.1:$old of slot $slot killed; 127.0.0.1:$new took over, the old" \
            "one is its replica" >&2
        ;;
    *)
        echo "usage: $0 start|stop|url|restart-master N|kill-master N" >&2
        exit 2
        ;;
esac
