#!/usr/bin/env bash
# Install the test tooling and run the whole suite: every tox env in the default list.
# Works on a fresh machine with Python 3.11 and pip; tooling lives in ./.venv.
# Servers a test needs (Redis, PostgreSQL) are started by scripts/services/ from here, bound
# to 127.0.0.1 on free ports, and stopped on exit (see scripts/services/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "tox>=4.11"

rm -rf .reports && mkdir -p .reports

# tox rebuilds an env when its deps lines change, not when the packages it installed from
# this checkout change (code, dependencies, entry points): the envs install them as a user
# would (not editable), so rebuild every env when any package file changed since the last run.
recreate=()
stamp=".tox/.packages.sha256"
digest="$(find core plugins contrib -type f \( -name '*.py' -o -name '*.toml' -o -name 'py.typed' \) \
    -not -path '*/build/*' -not -path '*.egg-info/*' -not -path '*/tests/*' -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum)"
if [ -d .tox ] && [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    recreate=(--recreate)
fi
# setuptools builds a non-editable install in the package's own build/ folder and never
# deletes files removed from the source since: start every build from a clean folder.
rm -rf core/build plugins/*/build contrib/*/build

# Servers the suite needs, on 127.0.0.1 only, on free ports (PENGUIFLOW_REDIS_PORT and
# PENGUIFLOW_POSTGRES_PORT choose them instead). Their pidfiles and ports are recorded in a
# folder of this run's own, and only what this run started is stopped, however it ends: a
# server someone else runs (on the same ports, or from another run) is never used or stopped.
mkdir -p .services
export PENGUIFLOW_SERVICES_DIR="$(mktemp -d "$PWD/.services/run.XXXXXX")"
trap 'bash scripts/services/redis.sh stop || true; bash scripts/services/postgres.sh stop || true
rm -rf "$PENGUIFLOW_SERVICES_DIR"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash scripts/services/redis.sh start
bash scripts/services/postgres.sh start
export PENGUIFLOW_REDIS_URL="$(bash scripts/services/redis.sh url)"
export PENGUIFLOW_POSTGRES_URL="$(bash scripts/services/postgres.sh url)"

status=0
.venv/bin/python -m tox run "${recreate[@]}" "$@" || status=$?
mkdir -p .tox && echo "$digest" > "$stamp"
.venv/bin/python scripts/summarize_tests.py .reports || true
exit "$status"
