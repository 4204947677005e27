#!/usr/bin/env bash
# The browser test: the demo page in headless Chromium against a real relay, with a TCP member.
#
#   Tests/Browser/run.sh [GHOST_SYNC_EXECUTABLE] [--screenshot]
#
# GHOST_SYNC_EXECUTABLE defaults to $(swift build --show-bin-path)/ghost-sync (build it first).
# Installs what is missing: Debian chromium and chromium-driver (apt-get, through sudo unless
# root), and Selenium from PyPI into the venv .build/browser-venv. Starts the relay on free ports
# (port 0, addresses read from its ready line), runs Tests/Browser/test_demo.py, and stops the
# relay by its PID however the test ends. --screenshot also writes docs/images/demo.png.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

executable=""
screenshot=()
for argument in "$@"; do
    case "$argument" in
        --screenshot) screenshot=(--screenshot "$repo/docs/images/demo.png") ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) executable=$argument ;;
    esac
done
if [[ -z "$executable" ]]; then
    executable="$(swift build --show-bin-path)/ghost-sync"
fi
if [[ ! -x "$executable" ]]; then
    echo "run.sh: no executable at $executable: build it first (swift build)" >&2
    exit 1
fi

# Chromium and its driver, from Debian.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    echo "run.sh: installing chromium and chromium-driver (apt-get)"
    "${sudo[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
fi

# Selenium, from PyPI, in a venv of our own.
venv="$repo/.build/browser-venv"
if ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
    echo "run.sh: making $venv with selenium (pip)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check selenium
fi

room=browser-test
ping_interval=1
relay_output=$(mktemp -d)
relay_pid=""
stop_relay() {
    if [[ -n "$relay_pid" ]] && kill -0 "$relay_pid" 2>/dev/null; then
        kill -TERM "$relay_pid"
        for _ in $(seq 50); do kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$relay_pid" 2>/dev/null && kill -KILL "$relay_pid"
        wait "$relay_pid" 2>/dev/null || true
    fi
    rm -rf "$relay_output"
}
trap stop_relay EXIT

# The 1 s ping interval lets the test see that pages answer the relay's Ping; the payload cap
# fits the test's 200 000-byte broadcast.
"$executable" relay --bind 127.0.0.1:0 --ws 127.0.0.1:0 --no-control --no-metrics --workers 2 \
    --room "$room" --room lobby --ping-interval "${ping_interval}s" --max-payload 262144 \
    >"$relay_output/stdout" 2>"$relay_output/stderr" &
relay_pid=$!

ready=""
for _ in $(seq 100); do  # 10 s
    ready=$(grep -m1 '^ghost-sync ready ' "$relay_output/stdout" || true)
    [[ -n "$ready" ]] && break
    if ! kill -0 "$relay_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    echo "run.sh: the relay did not print its ready line within 10 s; its stderr:" >&2
    cat "$relay_output/stderr" >&2
    exit 1
fi
tcp_address=$(sed -n 's/.* relay=\([^ ]*\).*/\1/p' <<<"$ready")
ws_address=$(sed -n 's/.* ws=\([^ ]*\).*/\1/p' <<<"$ready")
if [[ -z "$tcp_address" || -z "$ws_address" ]]; then
    echo "run.sh: no relay= or ws= address in the ready line: $ready" >&2
    exit 1
fi
echo "run.sh: $ready"

status=0
"$venv/bin/python" "$repo/Tests/Browser/test_demo.py" --tcp "$tcp_address" --ws "$ws_address" \
    --ghost-sync "$executable" --room "$room" --ping-interval "$ping_interval" "${screenshot[@]}" || status=$?
if [[ $status -ne 0 && -s "$relay_output/stderr" ]]; then
    echo "run.sh: the relay's stderr:" >&2
    tail -n 40 "$relay_output/stderr" >&2
fi
exit $status
