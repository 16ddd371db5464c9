#!/usr/bin/env bash
# Start or stop a Redis primary, one replica and three Sentinels watching them (master name
# `penguiflow`, quorum 2), for the tests: 127.0.0.1 only, free ports, nothing persisted. Ports,
# configuration files (Sentinel rewrites its own), pidfiles and logs are kept under
# $PENGUIFLOW_SERVICES_DIR/redis-sentinel (default .services/redis-sentinel); `stop` stops only
# the processes whose pidfiles are there.
#   bash scripts/services/redis-sentinel.sh start|stop|url|kill-primary
# `url` prints redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/penguiflow/0.
# `kill-primary` SIGKILLs the current primary (a crash: nothing flushed), waits until every
# Sentinel names the promoted replica, then starts the killed server again as a replica of the
# new primary: the set is whole again for the next test. (Started as the primary it was, empty,
# it would answer as a primary until the Sentinels turned it into a replica, and a client
# asking a Sentinel that had not yet heard of the failover could write to it and lose that.)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/redis-sentinel"
MASTER_NAME=penguiflow
DATA="data0 data1"
SENTINELS="sentinel0 sentinel1 sentinel2"

require_redis_tools

# The pid of process $1 (a folder name above) if it is still the one this script started.
proc_pid() {
    local dir="$STATE/$1" port
    port="$(cat "$dir/port" 2>/dev/null)" || return 1
    recorded_pid "$dir/redis.pid" "redis-\(server\|sentinel\).*:$port\b"
}

port_of() {
    cat "$STATE/$1/port"
}

# Write the configuration of process $1 (a data server, or with $2 = sentinel a Sentinel).
configure() {
    local dir="$STATE/$1" port
    port="$(port_of "$1")"
    {
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "dir $dir"
        echo "pidfile $dir/redis.pid"
        echo "logfile $dir/redis.log"
        echo "daemonize yes"
        if [ "${2:-}" = sentinel ]; then
            echo "sentinel monitor $MASTER_NAME 127.0.0.1 $(port_of data0) 2"
            # Quick failover for tests: a primary silent for 1 s is down.
            echo "sentinel down-after-milliseconds $MASTER_NAME 1000"
            echo "sentinel failover-timeout $MASTER_NAME 10000"
            echo "sentinel parallel-syncs $MASTER_NAME 1"
        else
            echo "save \"\""
            echo "appendonly no"
            # A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by
            # default, and a primary killed in that time takes the data with it).
            echo "repl-diskless-sync-delay 0"
            if [ "$1" != data0 ]; then
                echo "replicaof 127.0.0.1 $(port_of data0)"
            fi
        fi
    } >"$dir/redis.conf"
}

# Start process $1 from its configuration; true once it answers.
launch() {
    local dir="$STATE/$1" pid
    rm -f "$dir/redis.pid"
    if [ "${2:-}" = sentinel ]; then
        redis-server "$dir/redis.conf" --sentinel || return 1
    else
        redis-server "$dir/redis.conf" || return 1
    fi
    for _ in $(seq 1 100); do
        if pid="$(proc_pid "$1")"; then
            if redis_answers "$(port_of "$1")"; then
                return 0
            fi
        elif [ -f "$dir/redis.pid" ]; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

stop_proc() {
    local pid
    if pid="$(proc_pid "$1")"; then
        kill "${2:--TERM}" "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -d "/proc/$pid" ] || return 0
            sleep 0.1
        done
        echo "$1 (pid $pid) did not stop within 10 s" >&2
        return 1
    fi
}

stop_all() {
    local name
    for name in $SENTINELS $DATA; do
        stop_proc "$name" || true
    done
    rm -rf "$STATE"
}

# The port of the primary the Sentinels agree on now (asks the first that answers).
primary_port() {
    local name answer
    for name in $SENTINELS; do
        answer="$(redis-cli -h 127.0.0.1 -p "$(port_of "$name")" \
            sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | sed -n 2p)" || continue
        if [ -n "$answer" ]; then
            echo "$answer"
            return 0
        fi
    done
    return 1
}

# The port of the primary if every Sentinel names the same one.
agreed_primary_port() {
    local name answer first=""
    for name in $SENTINELS; do
        answer="$(redis-cli -h 127.0.0.1 -p "$(port_of "$name")" \
            sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | sed -n 2p)" || return 1
        [ -n "$answer" ] || return 1
        [ -z "$first" ] || [ "$answer" = "$first" ] || return 1
        first="$answer"
    done
    echo "$first"
}

# Every Sentinel knows the replica and the other two Sentinels, and the replica has the
# primary's data (its link is up after a full sync): ready to fail over without losing it.
ready() {
    local name port
    for name in $SENTINELS; do
        port="$(port_of "$name")"
        redis-cli -h 127.0.0.1 -p "$port" sentinel replicas "$MASTER_NAME" 2>/dev/null |
            grep -q "^ip$" || return 1
        [ "$(redis-cli -h 127.0.0.1 -p "$port" sentinel sentinels "$MASTER_NAME" 2>/dev/null |
            grep -c "^ip$")" -ge 2 ] || return 1
    done
    redis-cli -h 127.0.0.1 -p "$(primary_port)" info replication 2>/dev/null |
        grep -q "^slave0:.*state=online" || return 1
}

wait_ready() {
    for _ in $(seq 1 300); do
        ready && return 0
        sleep 0.1
    done
    return 1
}

running() {
    local name
    for name in $DATA $SENTINELS; do
        proc_pid "$name" >/dev/null || return 1
    done
    ready
}

start_once() {
    local name
    stop_all
    for name in $DATA $SENTINELS; do
        mkdir -p "$STATE/$name"
        free_port >"$STATE/$name/port"
    done
    for name in $DATA; do
        configure "$name"
        launch "$name" || return 1
    done
    for name in $SENTINELS; do
        configure "$name" sentinel
        launch "$name" sentinel || return 1
    done
    wait_ready
}

url() {
    local name hosts=()
    for name in $SENTINELS; do
        hosts+=("127.0.0.1:$(port_of "$name")")
    done
    (IFS=,; echo "redis+sentinel://${hosts[*]}/$MASTER_NAME/0")
}

case "${1:-}" in
    start)
        if running 2>/dev/null; then
            echo "redis sentinel set already running: $(url) (started here)" >&2
            exit 0
        fi
        for _ in 1 2 3; do
            if start_once; then
                echo "redis sentinel set ready: $(url) (primary 127.0.0.1:$(primary_port))" >&2
                exit 0
            fi
        done
        log="$(tail -n 5 "$STATE"/*/redis.log 2>/dev/null || true)"
        stop_all
        echo "the redis sentinel set did not start (three tries); last log lines:" >&2
        echo "$log" >&2
        exit 1
        ;;
    stop)
        stop_all
        ;;
    url)
        if [ ! -f "$STATE/sentinel0/port" ]; then
            echo "no redis sentinel set started from here; run: bash $0 start" >&2
            exit 1
        fi
        url
        ;;
    kill-primary)
        if ! running 2>/dev/null; then
            echo "the sentinel set started here is not running (or not ready); run: bash $0" \
                "start" >&2
            exit 1
        fi
        old="$(primary_port)"
        victim=""
        for name in $DATA; do
            [ "$(port_of "$name")" = "$old" ] && victim="$name"
        done
        if [ -z "$victim" ]; then
            echo "the Sentinels name 127.0.0.1:$old as primary, not a server started here" >&2
            exit 1
        fi
        stop_proc "$victim" -KILL
        for _ in $(seq 1 300); do
            new="$(agreed_primary_port || true)"
            if [ -n "$new" ] && [ "$new" != "$old" ] &&
                redis-cli -h 127.0.0.1 -p "$new" role 2>/dev/null | head -1 | grep -q master; then
                break
            fi
            sleep 0.1
        done
        if [ -z "${new:-}" ] || [ "$new" = "$old" ]; then
            echo "no failover that every Sentinel agrees on within 30 s after killing the" \
                "primary on $old" >&2
            exit 1
        fi
        # Back as a replica of the new primary from its first moment.
        configure "$victim"
        sed -i '/^replicaof /d' "$STATE/$victim/redis.conf"
        echo "replicaof 127.0.0.1 $new" >>"$STATE/$victim/redis.conf"
        launch "$victim" || {
            echo "the killed server did not start again; see $STATE/$victim/redis.log" >&2
            exit 1
        }
        if ! wait_ready; then
            echo "failed over to 127.0.0.1:$new, but the old primary did not rejoin as a" \
                "replica within 30 s" >&2
            exit 1
        fi
        echo "primary 127.0.0.1:$old killed; 127.0.0.1:$new is the primary now, the old one its" \
            "replica" >&2
        ;;
    *)
        echo "usage: $0 start|stop|url|kill-primary" >&2
        exit 2
        ;;
esac
