#!/bin/sh
# Install PenguiFlow and the chosen plugins into a new virtual environment.
#
# Usage: sh deploy/install-penguiflow.sh VENV_DIR
#
# The container image runs this in its build stage (deploy/Dockerfile), and
# deploy/tests/test_deploy.py runs the same file into a scratch folder, so what the image
# installs is tested without docker. Settings come from the environment (the Dockerfile's
# build arguments of the same names):
#
#   PENGUIFLOW_SOURCE    checkout (default): build wheels of core/ and plugins/ from the
#                        checkout at PENGUIFLOW_CHECKOUT (default: this file's parent folder)
#                        and install those; index: install released distributions from the
#                        package index pip is configured with (PIP_INDEX_URL, ...).
#   PENGUIFLOW_PLUGINS   plugins by short name, extras allowed, separated by spaces
#                        (default: "redis sessions[server] a2a[server]"); a plugin another
#                        one needs (sessions needs planner) comes along by itself.
#   PENGUIFLOW_VERSION   index only: a version specifier for the kernel, e.g. "==4.0.0".
#   PENGUIFLOW_EXTRA     more requirements (your application's), separated by spaces.
#   PENGUIFLOW_WHEELS    checkout only: where the wheels are built (default: a temporary
#                        folder, removed at exit).
set -eu

if [ "$#" -ne 1 ]; then
    echo "usage: sh $0 VENV_DIR (the virtual environment to create)" >&2
    exit 2
fi
venv=$1
source_kind=${PENGUIFLOW_SOURCE:-checkout}
plugins=${PENGUIFLOW_PLUGINS-redis sessions[server] a2a[server]}
checkout=${PENGUIFLOW_CHECKOUT:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}

pip="$venv/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

case "$source_kind" in
checkout)
    # Refuse a wrong setting before anything is built.
    if [ ! -f "$checkout/core/pyproject.toml" ]; then
        echo "PENGUIFLOW_SOURCE=checkout: no core/pyproject.toml under $checkout; point" \
            "PENGUIFLOW_CHECKOUT at a PenguiFlow checkout or use PENGUIFLOW_SOURCE=index" >&2
        exit 2
    fi
    # noglob while a plugin list is split: "sessions[server]" is no file pattern
    set -f
    for plugin in $plugins; do
        name=${plugin%%\[*}
        if [ ! -f "$checkout/plugins/penguiflow-$name/pyproject.toml" ]; then
            echo "PENGUIFLOW_PLUGINS: no plugin '$name' in $checkout/plugins (there are:" \
                "$(cd "$checkout/plugins" && ls -d penguiflow-* | sed 's/^penguiflow-//' |
                    tr '\n' ' '))" >&2
            exit 2
        fi
    done
    set +f
    "$python" -m venv "$venv"
    wheels=${PENGUIFLOW_WHEELS:-}
    if [ -z "$wheels" ]; then
        wheels=$(mktemp -d)
        trap 'rm -rf "$wheels"' EXIT
    fi
    # Wheels of the kernel and of every first-party plugin: a chosen plugin's first-party
    # dependencies (penguiflow-planner for penguiflow-sessions) are then found next to it
    # (--find-links) instead of on an index that does not have them. They are pure Python
    # and small, so building all of them costs seconds.
    $pip install --quiet "setuptools>=77" wheel
    set -- "$checkout/core"
    for dir in "$checkout"/plugins/penguiflow-*/; do
        set -- "$@" "${dir%/}"
    done
    $pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$wheels" "$@"
    $pip uninstall --quiet --yes wheel
    # The chosen packages are named by their wheel files, so pip installs exactly these
    # builds even when an index serves a distribution of the same name and version.
    set -- "$wheels"/penguiflow-[0-9]*.whl
    set -f
    for plugin in $plugins; do
        name=${plugin%%\[*}
        extras=${plugin#"$name"}
        set +f
        for file in "$wheels"/penguiflow_"$(echo "$name" | tr - _)"-[0-9]*.whl; do
            set -- "$@" "$file$extras"
        done
        set -f
    done
    set +f
    # shellcheck disable=SC2086 # PENGUIFLOW_EXTRA is a list of requirements
    $pip install --quiet --find-links "$wheels" "$@" ${PENGUIFLOW_EXTRA:-}
    ;;
index)
    "$python" -m venv "$venv"
    set -- "penguiflow${PENGUIFLOW_VERSION:-}"
    set -f
    for plugin in $plugins; do
        set -- "$@" "penguiflow-$plugin"
    done
    set +f
    # shellcheck disable=SC2086
    $pip install --quiet "$@" ${PENGUIFLOW_EXTRA:-}
    ;;
*)
    echo "PENGUIFLOW_SOURCE must be 'checkout' or 'index' (got '$source_kind')" >&2
    exit 2
    ;;
esac

# Fail the build here, not at the first pod start, when the command is missing or a plugin
# cannot be loaded (strict mode raises on the first broken plugin).
PENGUIFLOW_STRICT_PLUGINS=1 "$venv/bin/penguiflow" plugins check
"$venv/bin/penguiflow" --version
