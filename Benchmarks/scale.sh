#!/usr/bin/env bash
# Scaling harness (`make scale`). On a host whose affinity mask holds C CPUs it runs the relay
# with W = 1, 2, 4, … ≤ C/2 workers pinned to the first W CPUs (the whole relay process confined
# to them) and `ghost-sync bench` with C − W threads (at most 64) on the other CPUs, S1-shaped
# load per worker (CLIENTS_PER_WORKER clients over ROOMS_PER_WORKER rooms each, RATE Hz per
# client), everything on 127.0.0.1, every run bounded in time, every relay stopped by its PID.
# For each W it prints, over the measured window: each worker's deliveries per CPU-second of its
# thread (frames queued, from the relay's /metrics, over the CPU time of `ghost-wN` from /proc),
# their total, the scaling efficiency total ÷ (W × the W = 1 total), handoffs per second and
# cross-worker messages per delivery (0 once every client has joined). Raw JSON lines, one per W
# (and one per skipped W), go to $OUT.
#
#   Benchmarks/scale.sh                            (W = 1, 2, 4, … ≤ C/2)
#   WORKERS="1 2 4 8" DURATION=10s RATE=20 taskset -c 0-31 Benchmarks/scale.sh
#
# RATE defaults to 10 Hz (S1h): full-rate S1 saturates a worker on a slow core, and then its
# deliveries per CPU-second is a floor, not a measurement (flagged SATURATED, like make compare).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
RATE=${RATE:-10}
CLIENTS_PER_WORKER=${CLIENTS_PER_WORKER:-1000}
ROOMS_PER_WORKER=${ROOMS_PER_WORKER:-100}
PAYLOAD=${PAYLOAD:-64}
SATURATION=${SATURATION:-0.95}
OUT=${OUT:-$(mktemp /tmp/ghost-sync-scale.XXXXXX.jsonl)}
BIN=$(swift build -c release --show-bin-path)/ghost-sync
[ -x "$BIN" ] || swift build -c release --product ghost-sync

read -r -a CPUS <<<"$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')"
C=${#CPUS[@]}
if [ -z "${WORKERS:-}" ]; then
  WORKERS=""
  w=1
  while [ $((2 * w)) -le "$C" ]; do WORKERS="$WORKERS $w"; w=$((2 * w)); done
  # The next step up, so the report says why it was not run.
  [ "$w" -le "$C" ] && WORKERS="$WORKERS $w"
fi

source Benchmarks/ports.sh

join_cpus() { local IFS=,; echo "$*"; }

PID=""
RAW=$(mktemp /tmp/ghost-sync-scale-raw.XXXXXX.jsonl)
RUN=$(mktemp /tmp/ghost-sync-scale-run.XXXXXX.json)
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -f "$RAW" "$RUN"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "results: $OUT" >&2

for W in $WORKERS; do
  if [ $((2 * W)) -gt "$C" ]; then
    left=$((C - W > 0 ? C - W : 0))
    if [ "$left" -eq 0 ]; then why="it would leave the load generator without a core"
    else why="the load generator would have $left CPU(s) for $W workers' load"; fi
    reason="W = $W skipped: this host has $C CPUs and $why (the harness needs W <= C/2)"
    echo "$reason" >&2
    python3 -c 'import json, sys; print(json.dumps({"harness": "scale", "workers_requested": int(sys.argv[1]), "host_cpus": int(sys.argv[2]), "skipped": sys.argv[3]}))' \
      "$W" "$C" "$reason" >>"$RAW"
    continue
  fi
  relay_cpus=$(join_cpus "${CPUS[@]:0:W}")
  load_cpus=$(join_cpus "${CPUS[@]:W}")
  threads=$((C - W > 64 ? 64 : C - W))  # ghost-sync bench runs at most 64 threads
  # On SMT hosts a relay CPU's hyperthread sibling among the load CPUs shares its core.
  python3 - "$relay_cpus" "$load_cpus" <<'PY' >&2
import sys
relay, load = ({int(c) for c in a.split(",")} for a in sys.argv[1:3])
def expand(text):
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        yield from range(int(lo), int(hi or lo) + 1)
shared = set()
for cpu in relay:
    try: shared |= set(expand(open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read())) & load
    except OSError: pass
if shared:
    print(f"warning: load CPUs {sorted(shared)} are SMT siblings of relay CPUs: relay and load share physical cores "
          "(disable SMT, or run under taskset with one CPU per core)")
PY
  clients=$((CLIENTS_PER_WORKER * W))
  rooms=$((ROOMS_PER_WORKER * W))
  port=$(free_port)
  metrics=$(free_port)
  taskset -c "$relay_cpus" "$BIN" relay --bind "127.0.0.1:$port" --workers "$W" --cpus "$relay_cpus" --rooms "$rooms" \
    --max-clients $((clients + 1000)) --no-control --metrics "127.0.0.1:$metrics" --log-level warning >/dev/null 2>&1 &
  PID=$!
  wait_port "$port"
  wait_port "$metrics"
  echo "== W = $W: relay pid $PID on CPUs $relay_cpus, $threads load thread(s) on CPUs $load_cpus, $clients clients, $rooms rooms" >&2
  if timeout 300 taskset -c "$load_cpus" "$BIN" bench 2>/dev/null --addr "127.0.0.1:$port" --clients "$clients" --rooms "$rooms" \
       --rate "$RATE" --payload "$PAYLOAD" --duration "$DURATION" --warmup "$WARMUP" --threads "$threads" \
       --server-pid "$PID" --metrics "127.0.0.1:$metrics" --json >"$RUN"; then
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
r.update(harness="scale", workers_requested=int(sys.argv[2]), host_cpus=int(sys.argv[3]), relay_cpus=sys.argv[4],
         generator_cpus=sys.argv[5], generator_threads=int(sys.argv[6]))
print(json.dumps(r))' "$RUN" "$W" "$C" "$relay_cpus" "$load_cpus" "$threads" >>"$RAW"
  else
    echo "run failed: W = $W" >&2
  fi
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
done

python3 - "$RAW" "$OUT" "$SATURATION" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, threshold = open(sys.argv[2], "a"), float(sys.argv[3])
runs = [r for r in rows if "skipped" not in r]
for r in runs:
    workers = [w for w in r.get("workers", []) if w.get("deliveries_per_cpu_second") is not None]
    r["total_deliveries_per_cpu_second"] = sum(w["deliveries_per_cpu_second"] for w in workers) if workers else None
    r["saturated_workers"] = [w["worker"] for w in r.get("workers", []) if (w.get("cpu_seconds") or 0) >= threshold * r["seconds"]]
    r["handoffs_per_second"] = r["handoffs_in_window"] / r["seconds"] if r.get("handoffs_in_window") is not None else None
    worker_cpu = sum(w.get("cpu_seconds") or 0 for w in r.get("workers", []))
    # /proc counts CPU in clock ticks (10 ms): the difference can come out a tick below zero.
    r["other_relay_threads_cpu_seconds"] = max(0.0, r["server_cpu_seconds"] - worker_cpu) if r.get("server_cpu_seconds") is not None else None
    g = r.get("generator_cpu_seconds")
    r["generator_cpu_share"] = g / (r["seconds"] * r["generator_threads"]) if g is not None else None
base = next((r["total_deliveries_per_cpu_second"] for r in runs if r["workers_requested"] == 1), None)
for r in runs:
    total = r["total_deliveries_per_cpu_second"]
    r["scaling_efficiency"] = total / (r["workers_requested"] * base) if base and total is not None else None
for r in rows: out.write(json.dumps(r) + "\n")

def n(v, fmt="{:,.0f}"): return "—" if v is None else fmt.format(v)
if runs:
    r0 = runs[0]
    print(f'{r0["clients"] // r0["workers_requested"]} clients and {r0["rooms"] // r0["workers_requested"]} rooms per worker, '
          f'{r0["rate"]:g} Hz per client, {r0["payload"]} B; {r0["seconds"]:g} s measured; host CPUs: {r0["host_cpus"]}')
    print()
    print(f'{"W":>3} {"worker":>6} {"CPU":>4} {"conns":>6} {"frames out":>11} {"CPU s":>6} {"CPU %":>5} {"deliv/CPU-s":>12}  flag')
    for r in runs:
        cpus = r["relay_cpus"].split(",")
        for w in r.get("workers", []):
            c = w.get("cpu_seconds")
            sat = w["worker"] in r["saturated_workers"]
            cpu = cpus[w["worker"]] if w["worker"] < len(cpus) else "?"
            per = ("≥" if sat else "") + n(w.get("deliveries_per_cpu_second"))
            print(f'{r["workers_requested"]:>3} {"w" + str(w["worker"]):>6} {cpu:>4} {n(w.get("connections"), "{}"):>6} '
                  f'{n(w.get("frames_out")):>11} {n(c, "{:.2f}"):>6} {n(c and c / r["seconds"] * 100, "{:.0f}"):>5} {per:>12}  {"SATURATED" if sat else ""}')
    print()
    print(f'{"W":>3} {"delivered/s":>12} {"ratio":>7} {"total deliv/CPU-s":>18} {"efficiency":>10} {"handoffs/s":>10} '
          f'{"x-worker msg/deliv":>18} {"join handoffs":>13} {"other threads CPU s":>19} {"gen CPU %":>9}')
    for r in runs:
        W, joins = r["workers_requested"], r.get("handoffs_before_window")
        expect = f' (≈{r["clients"] * (W - 1) // W:,})' if joins is not None else ""
        print(f'{W:>3} {n(r["delivered_per_second"]):>12} {r["delivery_ratio"]:7.4f} {n(r["total_deliveries_per_cpu_second"]):>18} '
              f'{n(r["scaling_efficiency"], "{:.2f}"):>10} {n(r["handoffs_per_second"], "{:.1f}"):>10} '
              f'{n(r.get("cross_worker_messages_per_delivery"), "{:.3g}"):>18} {n(joins) + expect:>13} '
              f'{n(r["other_relay_threads_cpu_seconds"], "{:.2f}"):>19} {n(r["generator_cpu_share"] and r["generator_cpu_share"] * 100, "{:.0f}"):>9}')
    if any(r["saturated_workers"] for r in runs):
        print(f"\nSATURATED: the worker's thread used at least {threshold:.0%} of the window; its deliveries per CPU-second is a "
              "floor (the offered rate set it), and so is any total or efficiency built on it. Lower RATE.")
    if any((r["generator_cpu_share"] or 0) >= threshold for r in runs):
        print("The load generator used its cores fully in some run: it may not have offered the whole load (see delivered/s).")
for r in rows:
    if "skipped" in r: print(r["skipped"])
PY
