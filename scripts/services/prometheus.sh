#!/usr/bin/env bash
# Install Debian's Prometheus (server and promtool) when missing, and start or stop a server for
# the tests: 127.0.0.1 only, on a free port (or $PENGUIFLOW_PROMETHEUS_SERVER_PORT), with the
# configuration file the caller gives, its data in a folder of its own. The port, pidfile, log
# and data are kept under $PENGUIFLOW_SERVICES_DIR/prometheus (default .services/prometheus);
# `stop` stops only the server whose pidfile is there.
#   bash scripts/services/prometheus.sh install
#   bash scripts/services/prometheus.sh start CONFIG_FILE
#   bash scripts/services/prometheus.sh stop|url
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/prometheus"

ensure_installed() {
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        return
    fi
    # Without recommends: the node exporter and friends are not what the tests need.
    apt_install prometheus --no-install-recommends prometheus
    # The package may start a system instance on :9090; the tests use their own.
    (service prometheus stop || true) >/dev/null 2>&1
}

# The pid of the prometheus this script started, if it is still that process.
our_pid() {
    local port
    port="$(cat "$STATE/port" 2>/dev/null)" || return 1
    recorded_pid "$STATE/prometheus.pid" "prometheus.*127.0.0.1:$port\b"
}

ready() {
    python3 -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/-/ready", timeout=1) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)' "$1"
}

# Start on port $1 with config $2; true once our own process answers ready there.
start_on() {
    local port="$1" config="$2" pid
    echo "$port" >"$STATE/port"
    rm -rf "$STATE/data"
    prometheus --config.file="$config" --web.listen-address="127.0.0.1:$port" \
        --storage.tsdb.path="$STATE/data" --log.level=warn >"$STATE/prometheus.log" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE/prometheus.pid"
    for _ in $(seq 1 300); do
        if ! our_pid >/dev/null; then
            break # it exited (port taken? bad config?)
        fi
        if ready "$port"; then
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    return 1
}

case "${1:-}" in
    install)
        ensure_installed
        ;;
    start)
        config="${2:-}"
        if [ -z "$config" ] || [ ! -r "$config" ]; then
            echo "usage: $0 start CONFIG_FILE (a readable prometheus.yml; got '${config}')" >&2
            exit 2
        fi
        config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
        ensure_installed
        mkdir -p "$STATE"
        if pid="$(our_pid)"; then
            kill "$pid" 2>/dev/null || true # a new configuration: start afresh
            for _ in $(seq 1 100); do
                [ -d "/proc/$pid" ] || break
                sleep 0.1
            done
        fi
        ports="$(candidate_ports "${PENGUIFLOW_PROMETHEUS_SERVER_PORT:-}" \
            PENGUIFLOW_PROMETHEUS_SERVER_PORT)"
        for port in $ports; do
            if start_on "$port" "$config"; then
                echo "prometheus ready on 127.0.0.1:$port" >&2
                exit 0
            fi
        done
        rm -f "$STATE/port"
        echo "prometheus did not start (tried ports: $(echo $ports)); see $STATE/prometheus.log:" >&2
        tail -n 20 "$STATE/prometheus.log" >&2 || true
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
        rm -rf "$STATE/prometheus.pid" "$STATE/port" "$STATE/data"
        ;;
    url)
        if [ ! -f "$STATE/port" ]; then
            echo "no prometheus started from here; run: bash scripts/services/prometheus.sh start CONFIG" >&2
            exit 1
        fi
        echo "http://127.0.0.1:$(cat "$STATE/port")"
        ;;
    *)
        echo "usage: $0 install | start CONFIG_FILE | stop | url" >&2
        exit 2
        ;;
esac
