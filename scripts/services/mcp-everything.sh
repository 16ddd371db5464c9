#!/usr/bin/env bash
# Install the reference MCP "everything" server (@modelcontextprotocol/server-everything, from
# the npm registry, at a pinned version) for the MCP connector's tests, and print the path of
# its entry script. Node.js and npm come from Debian's packages when `node` is missing (as
# root; otherwise the script says what to install). The server is installed once into
# $PENGUIFLOW_MCP_EVERYTHING_DIR (default ~/.cache/penguiflow/mcp-everything-<version>) and
# reused. The tests start and stop the server themselves, over stdio or over streamable HTTP
# on 127.0.0.1 (bind-loopback.cjs keeps it off other interfaces: the server itself listens on
# every interface).
#   bash scripts/services/mcp-everything.sh install   # prints .../dist/index.js
#   bash scripts/services/mcp-everything.sh preload   # prints the loopback preload's path
set -euo pipefail
cd "$(dirname "$0")"
HERE="$PWD"
# shellcheck source=scripts/services/_lib.sh
. ./_lib.sh
VERSION="${PENGUIFLOW_MCP_EVERYTHING_VERSION:-2026.8.31}"
PACKAGE="@modelcontextprotocol/server-everything"
DIR="${PENGUIFLOW_MCP_EVERYTHING_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/penguiflow/mcp-everything-$VERSION}"
ENTRY="$DIR/node_modules/$PACKAGE/dist/index.js"

ensure_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        return
    fi
    apt_install "Node.js and npm" nodejs npm
}

ensure_server() {
    if [ -f "$ENTRY" ]; then
        return
    fi
    echo "installing $PACKAGE@$VERSION into $DIR ..." >&2
    mkdir -p "$DIR"
    # A private prefix: nothing is installed globally, and two versions never mix.
    (cd "$DIR" && npm install --no-audit --no-fund --silent --prefix "$DIR" \
        "$PACKAGE@$VERSION" >&2)
    if [ ! -f "$ENTRY" ]; then
        echo "npm installed $PACKAGE but $ENTRY is missing" >&2
        exit 1
    fi
}

case "${1:-}" in
    install)
        ensure_node
        ensure_server
        echo "$ENTRY"
        ;;
    preload)
        echo "$HERE/bind-loopback.cjs"
        ;;
    *)
        echo "usage: $0 install|preload" >&2
        exit 2
        ;;
esac
