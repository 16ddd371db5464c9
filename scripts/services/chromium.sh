#!/usr/bin/env bash
# Make sure Debian's headless Chromium and its WebDriver are installed, for the playground's
# browser tests (plugins/penguiflow-playground/tests/test_browser.py), and print where they
# are. Nothing is started: each test starts its own chromedriver through Selenium.
#   bash scripts/services/chromium.sh            # install when missing, print the paths
#   bash scripts/services/chromium.sh env        # the same, as PENGUIFLOW_CHROMIUM=... lines
set -euo pipefail
# shellcheck source=scripts/services/_lib.sh
. "$(dirname "$0")/_lib.sh"

find_browser() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

find_driver() {
    command -v chromedriver 2>/dev/null \
        || { [ -x /usr/lib/chromium/chromedriver ] && echo /usr/lib/chromium/chromedriver; } \
        || true
}

if [ -z "$(find_browser)" ] || [ -z "$(find_driver)" ]; then
    apt_install "chromium and chromium-driver" chromium chromium-driver
fi

browser="$(find_browser)"
driver="$(find_driver)"
if [ -z "$browser" ] || [ -z "$driver" ]; then
    echo "chromium or chromedriver is still missing after the install; see apt's output" >&2
    exit 1
fi
if [ "${1:-}" = "env" ]; then
    echo "PENGUIFLOW_CHROMIUM=$browser"
    echo "PENGUIFLOW_CHROMEDRIVER=$driver"
else
    echo "chromium: $browser ($("$browser" --version 2>/dev/null || echo 'version unknown'))"
    echo "chromedriver: $driver ($("$driver" --version 2>/dev/null || echo 'version unknown'))"
fi
