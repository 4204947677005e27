#!/usr/bin/env bash
# Correctness check of the C reference relay before benchmarking with it (not part of make test):
# starts it on a free 127.0.0.1 port, runs protocol_check.py (test vectors, joins, leaves,
# errors, protocol errors), then a short closed-loop bench run driving it as a GhostSync relay,
# and fails unless the bench run succeeds (the load generator fails on any Error frame or closed
# connection) with deliveries, none lost, duplicated or reordered, and the relay's own counters
# agree: every broadcast reached every other member of its room, nothing was dropped, and its
# deliveries match the bench's rate over the time load was applied. Stops the relay by its PID.
#
#   Benchmarks/ReferenceRelay/check.sh          CLIENTS=100 ROOMS=10 DURATION=3s (defaults)
#   RELAY_ARGS=--coalesce Benchmarks/ReferenceRelay/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/ports.sh
CLIENTS=${CLIENTS:-100}
ROOMS=${ROOMS:-10}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
RELAY_ARGS=${RELAY_ARGS:-}
[ $((CLIENTS % ROOMS)) -eq 0 ] || { echo "CLIENTS must be a multiple of ROOMS (equal rooms)" >&2; exit 64; }
make -s reference-relay
BIN=$(swift build -c release --show-bin-path)/ghost-sync
[ -x "$BIN" ] || swift build -c release --product ghost-sync

port=$(free_port)
log=$(mktemp /tmp/reference-relay-check.XXXXXX.log)
result=$(mktemp /tmp/reference-relay-check.XXXXXX.json)
# shellcheck disable=SC2086
.build/reference-relay/reference-relay --bind "127.0.0.1:$port" --rooms "$ROOMS" $RELAY_ARGS 2>"$log" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
wait_port "$port"

counters() {  # asks for the counters line (SIGUSR1) and waits, bounded, until it is written
  local before
  before=$(grep -c frames_in= "$log" || true)
  kill -USR1 "$PID"
  for _ in $(seq 1 50); do
    [ "$(grep -c frames_in= "$log" || true)" -gt "$before" ] && return 0
    sleep 0.05
  done
  echo "the relay printed no counters" >&2; return 1
}

timeout 60 python3 Benchmarks/ReferenceRelay/protocol_check.py "$port"
counters
timeout 120 "$BIN" bench --target ghost --addr "127.0.0.1:$port" --mode closed --clients "$CLIENTS" --rooms "$ROOMS" \
  --window 8 --payload 64 --duration "$DURATION" --warmup "$WARMUP" --server-pid "$PID" --json >"$result" 2>/dev/null \
  || { echo "bench run failed:" >&2; cat "$result" >&2; exit 1; }
sleep 0.5  # the bench's connections closed: the relay has seen them go
counters
kill -TERM "$PID"
wait "$PID" || { echo "the relay did not exit cleanly" >&2; exit 1; }
trap - EXIT

python3 - "$result" "$log" "$CLIENTS" "$ROOMS" "$DURATION" "$WARMUP" <<'PY'
import json, re, sys
result, log, clients, rooms, duration, warmup = sys.argv[1:]
r = json.load(open(result))
lines = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", l)) for l in open(log) if "frames_in=" in l]
before, after = lines[-3], lines[-2]  # around the bench run (the last line is the exit's, the same)
d = {k: after[k] - before[k] for k in after}
members = int(clients) // int(rooms)
seconds = lambda text: float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1]) * (60 if text.endswith("m") else 1)
active = d["deliveries"] / r["delivered_per_second"] if r["delivered_per_second"] else 0
print(f"bench: delivered {r['delivered']} ({r['delivered_per_second']:.0f}/s), lost {r['lost']}, duplicated {r['duplicated']}, "
      f"reordered {r['reordered']}, deliveries per server CPU-second {r['deliveries_per_server_cpu_second'] or 0:.0f}")
print(f"relay over the bench run: broadcasts in {d['broadcasts_in']:.0f}, deliveries {d['deliveries']:.0f}, drops {d['drops']:.0f}, "
      f"accepts {d['accepts']:.0f}, closes {d['closes']:.0f}, frames out per write {d['frames_out'] / max(d['writes'], 1):.2f}, "
      f"frames in per read {d['frames_in'] / max(d['reads'], 1):.2f}; at the bench's rate that is {active:.2f} s of load")
problems = []
if r["delivered"] == 0: problems.append("no deliveries")
if r["lost"] or r["duplicated"] or r["reordered"]: problems.append("losses, duplicates or reordering")
if d["drops"]: problems.append("the relay dropped frames")
if d["deliveries"] != d["broadcasts_in"] * (members - 1): problems.append(f"deliveries != broadcasts x {members - 1}")
if d["accepts"] != int(clients) or d["closes"] != int(clients): problems.append("accepts/closes != clients")
if d["deliveries"] < r["delivered"]: problems.append("the relay delivered fewer than the bench counted")
# Closed loop: load runs through warm-up, the window and the bench's 1 s drain.
low, high = seconds(duration), seconds(duration) + seconds(warmup) + 2
if not low <= active <= high: problems.append(f"relay deliveries imply {active:.2f} s of load, not {low:.0f}-{high:.0f} s")
if problems:
    print("check FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("check: ok")
PY
rm -f "$result" "$log"
