#!/usr/bin/env bash
# Autobahn TestSuite against the relay's own WebSocket codec: starts
# `ghost-sync ws-echo --bind 127.0.0.1:PORT` on a free port, runs run.sh against it and stops
# it again, whatever happens.
#
#   Tests/Autobahn/test.sh [GHOST_SYNC_EXECUTABLE]
#
# The executable defaults to $(swift build --show-bin-path)/ghost-sync (a debug build).
# run.sh's environment variables (AUTOBAHN_MAX_MESSAGE, AUTOBAHN_TIMEOUT, ...) pass through.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-}
if [ -z "$BIN" ]; then
  BIN="$(cd "$ROOT" && swift build --show-bin-path)/ghost-sync"
fi
if [ ! -x "$BIN" ]; then
  echo "autobahn: no executable at $BIN (build it with: swift build --product ghost-sync)" >&2
  exit 2
fi
WORK=${AUTOBAHN_WORK:-$ROOT/.build/autobahn}
mkdir -p "$WORK"
LOG=$WORK/ws-echo.log

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Its largest message follows the cap run.sh applies to 9.* (both default to 64 KiB).
"$BIN" ws-echo --bind "127.0.0.1:$PORT" --max-payload "${AUTOBAHN_MAX_MESSAGE:-65536}" >"$LOG" 2>&1 &
PID=$!

# shellcheck disable=SC2317  # called through the trap
stop_echo() {
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
      echo "autobahn: ws-echo (pid $PID) still running 5 s after SIGTERM: SIGKILL" >&2
      kill -KILL "$PID" 2>/dev/null || true
    fi
  fi
  wait "$PID" 2>/dev/null || true
}
trap stop_echo EXIT

# Ready when it has printed `ghost-sync ready ws=ADDR` and the port takes a connection (at most 10 s).
ready=""
for _ in $(seq 1 200); do
  if ! kill -0 "$PID" 2>/dev/null; then
    cat "$LOG" >&2
    echo "autobahn: ghost-sync ws-echo exited before it was ready" >&2
    exit 2
  fi
  if grep -q '^ghost-sync ready ws=' "$LOG" && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    ready=yes
    break
  fi
  sleep 0.05
done
if [ -z "$ready" ]; then
  cat "$LOG" >&2
  echo "autobahn: ghost-sync ws-echo not ready on 127.0.0.1:$PORT after 10 s" >&2
  exit 2
fi
echo "autobahn: $(grep -m 1 '^ghost-sync ready ws=' "$LOG") (pid $PID)"

status=0
"$HERE/run.sh" "ws://127.0.0.1:$PORT" || status=$?

if ! kill -0 "$PID" 2>/dev/null; then
  wait "$PID" && code=0 || code=$?
  tail -n 40 "$LOG" >&2
  echo "autobahn: FAILED: ghost-sync ws-echo died during the run (exit status $code; log $LOG)" >&2
  exit 1
fi
exit "$status"
