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
