#!/usr/bin/env bash
# Install the test tooling and run the whole suite: every tox env in the default list.
# Works on a fresh machine with Python 3.11 and pip; tooling lives in ./.venv.
# Servers a test needs (Redis, PostgreSQL, MCP) are started by scripts/services/ from here,
# bound to 127.0.0.1, and stopped on exit (see scripts/services/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "tox>=4.11"

rm -rf .reports && mkdir -p .reports

# tox rebuilds an env when its deps lines change, not when a package's pyproject.toml does
# (new dependencies, new or removed entry points): rebuild every env when any of them changed.
recreate=()
stamp=".tox/.pyprojects.sha256"
digest="$(find core plugins contrib -name pyproject.toml -not -path '*/build/*' | sort | xargs sha256sum | sha256sum)"
if [ -d .tox ] && [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    recreate=(--recreate)
fi

# Servers the suite needs, on 127.0.0.1 only; stopped however the run ends.
trap 'bash scripts/services/redis.sh stop; bash scripts/services/postgres.sh stop' EXIT
bash scripts/services/redis.sh start
bash scripts/services/postgres.sh start
export PENGUIFLOW_REDIS_URL="$(bash scripts/services/redis.sh url)"
export PENGUIFLOW_POSTGRES_URL="$(bash scripts/services/postgres.sh url)"

status=0
.venv/bin/python -m tox run "${recreate[@]}" "$@" || status=$?
mkdir -p .tox && echo "$digest" > "$stamp"
.venv/bin/python scripts/summarize_tests.py .reports || true
exit "$status"
