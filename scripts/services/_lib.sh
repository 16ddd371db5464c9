# Sourced by the service scripts (not run on its own). The caller has cd'ed to the checkout.
#
# Each script records what it started under $PENGUIFLOW_SERVICES_DIR (default: the checkout's
# .services/, git-ignored): the port, a pidfile or the cluster folder. `stop` acts on those
# records only, so a server this script did not start is never reused or stopped, and two runs
# with different folders (scripts/test.sh makes one per run) never touch each other's servers.

SERVICES_DIR="${PENGUIFLOW_SERVICES_DIR:-$PWD/.services}"
case "$SERVICES_DIR" in
    /*) ;;
    *) SERVICES_DIR="$PWD/$SERVICES_DIR" ;;
esac

# A port nothing listens on now (the kernel picks it); the server may still lose a race for
# it, which the scripts handle by trying another.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Whether something accepts connections on 127.0.0.1:$1.
port_in_use() {
    python3 -c 'import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

# The ports to try, in order: the one the user chose ($1: a variable's value, may be empty),
# refused when something already listens there; otherwise three free ones.
candidate_ports() {
    local chosen="$1" variable="$2"
    if [ -n "$chosen" ]; then
        if port_in_use "$chosen"; then
            echo "port $chosen ($variable) is already in use by a server this script did not" \
                "start; it is left alone: unset $variable to use a free port, or choose" \
                "another" >&2
            return 1
        fi
        echo "$chosen"
        return 0
    fi
    local _
    for _ in 1 2 3; do
        free_port
    done
}

# The pid in pidfile $1 if that process is still running with a command line that matches
# the pattern $2 (grep's basic syntax): a pidfile can outlive its server, and the pid be
# reused by another process, which must never be taken for ours (or stopped).
recorded_pid() {
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e "$2" || return 1
    echo "$pid"
}

# Install Debian packages ($2...; options such as --no-install-recommends may come first),
# called $1 in messages, when running as root where apt-get exists; otherwise exit with the
# command that would install them.
apt_install() {
    local what="$1"
    shift
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$what: not installed; install with: sudo apt-get install $*" >&2
        exit 1
    fi
    echo "installing $what from Debian's packages..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Exit with what to run unless redis-server and redis-cli are installed (for the scripts that
# start several servers; redis.sh installs them).
require_redis_tools() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "redis-server/redis-cli are not installed; run: bash scripts/services/redis.sh start" \
            "(it installs them), or: sudo apt-get install redis-server" >&2
        exit 1
    fi
}

# Whether a Redis server (or Sentinel) on 127.0.0.1:$1 answers PING.
redis_answers() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}
