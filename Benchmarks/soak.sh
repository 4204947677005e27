#!/usr/bin/env bash
# Soak: scenario S1 (1,000 clients, 100 rooms, 20 Hz) for SOAK_SECONDS (default 600) against a
# relay with two workers, while other clients churn (connect, join, send, leave) and rooms are
# created and deleted. Passes when the relay never crashes, the S1 clients get 100 % of their
# messages, RSS is flat after warm-up (< 5 % growth from the end of warm-up, taken as the
# first fifth of the run and at least 60 s, to the end), and descriptors return to the baseline.
# RSS is sampled every 10 s; the samples are printed.
# Loopback only; every process is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
BIN=$(swift build -c release --show-bin-path)/ghost-sync
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CONTROL=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp /tmp/ghost-sync-soak.XXXXXX)

"$BIN" relay --bind "127.0.0.1:$PORT" --control "127.0.0.1:$CONTROL" --no-metrics --rooms 100 --workers 2 \
  --max-clients 5000 --log-level warning 2>>"$LOG" &
RELAY=$!
CHURN=""
trap 'kill $RELAY $CHURN 2>/dev/null || true' EXIT
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' "/proc/$RELAY/status"; }
fds() { ls "/proc/$RELAY/fd" | wc -l; }
BASE_FDS=$(fds)
echo "relay pid $RELAY, baseline: $(rss) KiB RSS, $BASE_FDS descriptors"

# Churn: short-lived clients and room creation/deletion, until told to stop.
(
  i=0
  while true; do
    "$BIN" send "room-$((i % 100 + 1))" "churn $i" --addr "127.0.0.1:$PORT" >/dev/null 2>&1 || true
    "$BIN" admin create "temp-$i" --control "127.0.0.1:$CONTROL" >/dev/null 2>&1 || true
    "$BIN" admin delete "temp-$((i - 1))" --control "127.0.0.1:$CONTROL" >/dev/null 2>&1 || true
    i=$((i + 1))
  done
) &
CHURN=$!

timeout $((SOAK_SECONDS + 120)) "$BIN" bench --addr "127.0.0.1:$PORT" --clients 1000 --rooms 100 --rate 20 \
  --duration "${SOAK_SECONDS}s" --warmup 10s --server-pid "$RELAY" --json >"$LOG.bench" 2>/dev/null &
BENCH=$!
WARMUP_SECONDS=$(( SOAK_SECONDS / 5 > 60 ? SOAK_SECONDS / 5 : 60 ))
SAMPLES=""
ELAPSED=0
WARM_RSS=""
PEAK_RSS=0
while kill -0 "$BENCH" 2>/dev/null; do
  kill -0 "$RELAY" || { echo "FAIL: the relay died"; exit 1; }
  now=$(rss)
  SAMPLES="$SAMPLES $now"
  if [ "$ELAPSED" -ge "$WARMUP_SECONDS" ]; then
    [ -z "$WARM_RSS" ] && WARM_RSS=$now
    [ "$now" -gt "$PEAK_RSS" ] && PEAK_RSS=$now
  fi
  sleep 10
  ELAPSED=$((ELAPSED + 10))
done
[ -n "$WARM_RSS" ] || WARM_RSS=$(rss)
echo "RSS samples (KiB, every 10 s):$SAMPLES"
wait "$BENCH" || { echo "FAIL: the load run failed"; exit 1; }
END_RSS=$(rss)
kill "$CHURN" 2>/dev/null || true
wait "$CHURN" 2>/dev/null || true
CHURN=""
sleep 3
END_FDS=$(fds)
python3 - "$LOG.bench" "$WARM_RSS" "$PEAK_RSS" "$END_RSS" "$BASE_FDS" "$END_FDS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
warm, peak, end, base_fds, end_fds = map(int, sys.argv[2:])
growth = (end - warm) / warm * 100
print(f"S1 for {r['seconds']:.0f} s: delivered {r['delivered']} of {r['expected']} (ratio {r['delivery_ratio']:.6f}), "
      f"lost {r['lost']}, p50 {r['latency_us']['p50']} µs, p99 {r['latency_us']['p99']} µs")
print(f"RSS at the end of warm-up {warm} KiB, peak after it {peak} KiB, end {end} KiB: growth {growth:+.1f} %")
print(f"descriptors: baseline {base_fds}, after the churn stopped {end_fds}")
ok = r["delivery_ratio"] == 1.0 and growth < 5 and end_fds <= base_fds
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
