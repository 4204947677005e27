#!/usr/bin/env bash
# What the NATS cluster costs (issue 13, "Numbers"; docs/performance.md, "Cluster: S1 split over
# two relays"). One nats-server (GOMAXPROCS=1, monitoring port on, JetStream for the room registry), then per scenario and round:
#
#   single:  one relay, 1 worker, all clients on it;
#   cluster: two relays, 1 worker each, joined with --cluster nats://… --node a|b, the clients
#            split over both (`ghost-sync bench --addr A --addr B`: each room's members alternate
#            over the relays, so every room has members on both).
#
# Each run measures deliveries per CPU-second counting every server process (the relay; the two
# relays and the nats-server), the NATS messages per broadcast over the measured window (the
# nats-server's /varz in_msgs and out_msgs, read by the load generator when the window opens and
# closes: in_msgs counts publishes, out_msgs what the server sent to subscribers), and the one-way
# latency of same-relay and cross-relay deliveries. The table gives each setup's median run, the
# cluster/single ratio of deliveries per CPU-second (median and per round) and the latency a
# cross-relay delivery adds (cross-relay p50/p99 of the cluster run minus the single relay's
# p50/p99 in the same round; median over rounds). Raw JSON lines (one per run, with "setup",
# "scenario", "round") go to $OUT.
#
#   Benchmarks/cluster-bench.sh [scenario ...]        (default: S1 S1h)
#   ROUNDS=3 DURATION=10s OUT=/tmp/cluster.jsonl Benchmarks/cluster-bench.sh S1h
#
# Pinning (as compare.sh): every server on SERVER_CPUS (default 0; the relays' workers pinned
# there with --cpus, nats-server with taskset), the load generator on LOAD_CPU (default 1). A run
# whose servers used at least SATURATION (0.95) of SERVER_CPUS over the window is SATURATED: its
# deliveries per CPU-second is a floor (the offered rate set it) and a ratio with it compares
# nothing; S1h is S1 at half rate for that reason. A run whose load generator sent less than 98 %
# of the scenario's rate is flagged under-offered (its CPU says nothing: it polls between sends).
# NICE (default 0) runs every server and the load generator at that nice value: on a host shared
# with other work, NICE=-5 (root) keeps that work from starving them, which otherwise favours the
# single relay (one process against three competing for CPU 0 under a fair scheduler; a starved
# relay batches more and looks cheaper per delivery). RT=N (root) runs the servers (not the load
# generator, which polls) under SCHED_FIFO priority N instead: woken at once by a message rather
# than after another process's time slice, as on an idle host. Each JSON line records both, and
# the machine's load average before and after. The order of the two setups alternates by round. Every process is started here, bounded in
# time and stopped by its PID. Not part of CI (make cluster-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${*:-"S1 S1h"}
SATURATION=${SATURATION:-0.95}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPU=${LOAD_CPU:-1}
NICE=${NICE:-0}
RT=${RT:-}
SERVER_SCHED=(nice -n "$NICE")
[ -n "$RT" ] && SERVER_SCHED=(chrt -f "$RT")
OUT=${OUT:-$(mktemp /tmp/ghost-sync-cluster-bench.XXXXXX.jsonl)}
BIN=${BIN:-$(swift build -c release --show-bin-path)/ghost-sync}
[ -x "$BIN" ] || swift build -c release --product ghost-sync
command -v nats-server >/dev/null || { echo "nats-server is not installed (make deps installs it)" >&2; exit 69; }

# shellcheck source=Benchmarks/ports.sh
source Benchmarks/ports.sh
# shellcheck source=Benchmarks/scenarios.sh
source Benchmarks/scenarios.sh
# Open-loop scenarios only: the table's offered-rate check and the cluster comparison assume a rate.
for scenario in $SCENARIOS; do
  case "$scenario" in S1|S1h) ;; *) echo "cluster-bench runs S1 and S1h (got $scenario)" >&2; exit 64 ;; esac
done
DIR=$(mktemp -d /tmp/ghost-sync-cluster-bench.XXXXXX)
PIDS=()
stop_all() {  # stop what this script started, by PID
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {  # keeps the script's exit status
  local status=$?
  stop_all
  if [ -n "${NATS_PID:-}" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls a relay's /metrics until LINE is there (5 s at most).
wait_metric() {
  for _ in $(seq 1 100); do
    curl -fs --max-time 1 "http://127.0.0.1:$1/metrics" 2>/dev/null | grep -q "^$2" && return 0
    sleep 0.05
  done
  echo "relay metrics on port $1 never showed: $2" >&2; return 1
}

next_port; NATS_PORT=$PORT
next_port; NATS_MONITOR=$PORT
GOMAXPROCS=1 "${SERVER_SCHED[@]}" taskset -c "$SERVER_CPUS" nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR" -js -sd "$DIR/js" > "$DIR/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT"
wait_port "$NATS_MONITOR"

start_relay() {  # port metrics-port [node] -> appends the PID to PIDS
  local cluster=()
  [ -n "${3:-}" ] && cluster=(--cluster "nats://127.0.0.1:$NATS_PORT" --node "$3")
  "${SERVER_SCHED[@]}" taskset -c "$SERVER_CPUS" "$BIN" relay --bind "127.0.0.1:$1" --metrics "127.0.0.1:$2" --no-control --workers 1 --cpus "${SERVER_CPUS%%[,-]*}" \
    --rooms 1000 --max-clients 20000 --log-level warning "${cluster[@]}" > "$DIR/relay-${3:-single}.log" 2>&1 &
  PIDS+=($!)
}

run() {  # scenario round setup
  local scenario=$1 round=$2 setup=$3 ports=() metrics=() addresses=() measure=() monitor=()
  local count=1
  [ "$setup" = cluster ] && count=2
  for _ in $(seq 1 "$count"); do
    next_port; ports+=("$PORT")
    next_port; metrics+=("$PORT")
  done
  if [ "$setup" = single ]; then
    start_relay "${ports[0]}" "${metrics[0]}"
  else
    start_relay "${ports[0]}" "${metrics[0]}" a
    start_relay "${ports[1]}" "${metrics[1]}" b
  fi
  for i in $(seq 0 $((count - 1))); do
    wait_port "${ports[$i]}"
    wait_port "${metrics[$i]}"
    addresses+=(--addr "127.0.0.1:${ports[$i]}")
    measure+=(--server-pid "${PIDS[$i]}")
  done
  if [ "$setup" = cluster ]; then
    # Both relays linked to NATS and hearing each other before a client connects.
    for i in 0 1; do
      wait_metric "${metrics[$i]}" "ghostsync_cluster_links_up 1"
      wait_metric "${metrics[$i]}" "ghostsync_cluster_nodes 1"
    done
    measure+=(--server-pid "$NATS_PID")
    # Each relay's frames and NATS messages over the window ("relay_counters").
    for i in 0 1; do measure+=(--metrics "127.0.0.1:${metrics[$i]}"); done
  fi
  # The NATS counters over the window in both setups (the single relay sends nothing to NATS).
  monitor=(--nats-monitor "127.0.0.1:$NATS_MONITOR")
  echo "== round $round: $scenario $setup (relay pids ${PIDS[*]}, nats-server $NATS_PID)" >&2
  # The machine's load average around the run (others' work on a shared host starves the
  # servers, which then batch more and look cheaper per delivery).
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2046
  if timeout 300 nice -n "$NICE" taskset -c "$LOAD_CPU" "$BIN" bench 2>"$DIR/bench.err" "${addresses[@]}" $(scenario_args "$scenario") \
       --duration "$DURATION" --warmup "$WARMUP" "${measure[@]}" "${monitor[@]}" --json > "$DIR/run.json"; then
    python3 - "$DIR/run.json" "$scenario" "$round" "$setup" "$SATURATION" "$SERVER_CPUS" "$load_before" "$(cut -d' ' -f1 /proc/loadavg)" "$NICE" "${RT:-0}" <<'PY' >> "$OUT"
import json, sys
scenario, round_, setup, threshold, cpus = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6]
def count(spec):  # "0", "0,1", "0-3"
    n = 0
    for part in spec.split(","):
        a, _, b = part.partition("-")
        n += int(b or a) - int(a) + 1
    return n
r = json.load(open(sys.argv[1]))
r.update({"scenario": scenario, "round": round_, "setup": setup, "server_cpus": cpus, "nice": int(sys.argv[9]), "server_rt_priority": int(sys.argv[10]),
          "load_average_before": float(sys.argv[7]), "load_average_after": float(sys.argv[8])})
for node, n in zip("ab", r.get("relay_counters", [])):  # NATS publishes per client frame (broadcast) the relay received
    n["node"] = node
    n["nats_published_per_frame_in"] = n["nats_published"] / n["frames_in"] if n["frames_in"] else None
cpu = r.get("server_cpu_seconds")
each = r.get("server_cpu_seconds_each") or ([cpu] if cpu is not None else [])
r["relay_cpu_seconds"] = sum(each[:2] if setup == "cluster" else each[:1]) if each else None
r["nats_cpu_seconds"] = each[2] if setup == "cluster" and len(each) > 2 else 0.0
r["server_cpu_share"] = cpu / r["seconds"] / count(cpus) if cpu is not None else None
r["saturated"] = cpu is not None and r["server_cpu_share"] >= threshold
# The generator polls between sends at these rates (its CPU says nothing): it fell behind if it
# sent less than the scenario's rate over the window.
r["offered_share"] = r["sent"] / (r["clients"] * r["rate"] * r["seconds"])
r["under_offered"] = r["offered_share"] < 0.98
print(json.dumps(r))
PY
  else
    echo "run failed: $scenario $setup round $round: $(tail -c 300 "$DIR/bench.err")" >&2
  fi
  stop_all
}

echo "results: $OUT" >&2
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="single cluster"; else order="cluster single"; fi
  for scenario in $SCENARIOS; do
    for setup in $order; do run "$scenario" "$round" "$setup"; done
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def per_cpu(r): return r.get("deliveries_per_server_cpu_second") or 0
def median_row(rs): return sorted(rs, key=per_cpu)[len(rs) // 2]
def flag(rs, r):
    marks = []
    n = sum(x["saturated"] for x in rs)
    if r["saturated"]: marks.append(f"SATURATED {n}/{len(rs)}")
    elif n: marks.append(f"{n}/{len(rs)} runs saturated")
    g = sum(x["under_offered"] for x in rs)
    if g: marks.append(f"under-offered {g}/{len(rs)}")
    return ", ".join(marks)
notes = set()
print(f'{"scenario":8} {"setup":7} {"runs":>4} {"deliv/s":>8} {"ratio":>6} {"p50 µs":>7} {"p99 µs":>7} {"same p50/p99":>13} {"cross p50/p99":>14} '
      f'{"relays s":>8} {"nats s":>6} {"CPU %":>5} {"deliv/CPU-s":>11} {"in/bc":>5} {"out/bc":>6}  flag')
summary = []
for s in dict.fromkeys(r["scenario"] for r in rows):
    by = {setup: [r for r in rows if r["scenario"] == s and r["setup"] == setup] for setup in ("single", "cluster")}
    for setup, rs in by.items():
        if not rs: continue
        r = median_row(rs)
        lat = r["latency_us"]
        same = r.get("latency_same_relay_us"); cross = r.get("latency_cross_relay_us")
        sc = f'{same["p50"]}/{same["p99"]}' if same else "—"
        cc = f'{cross["p50"]}/{cross["p99"]}' if cross else "—"
        eff = ("≥" if r["saturated"] else "") + f"{per_cpu(r):.0f}"
        if r["saturated"]: notes.add("sat")
        if any(x["under_offered"] for x in rs): notes.add("gen")
        inbc = r.get("nats_in_msgs_per_broadcast"); outbc = r.get("nats_out_msgs_per_broadcast")
        print(f'{s:8} {setup:7} {len(rs):4} {r["delivered_per_second"]:8.0f} {r["delivery_ratio"]:6.4f} {lat["p50"]:7} {lat["p99"]:7} {sc:>13} {cc:>14} '
              f'{r["relay_cpu_seconds"]:8.2f} {r["nats_cpu_seconds"]:6.2f} {r["server_cpu_share"] * 100:5.0f} {eff:>11} '
              f'{inbc if inbc is not None else 0:5.2f} {outbc if outbc is not None else 0:6.2f}  {flag(rs, r)}')
    rounds = sorted({r["round"] for r in by["single"]} & {r["round"] for r in by["cluster"]})
    ratios, add50, add99, cross_vs_same50, cross_vs_same99 = [], [], [], [], []
    for k in rounds:
        a = next(r for r in by["single"] if r["round"] == k)
        b = next(r for r in by["cluster"] if r["round"] == k)
        if per_cpu(a): ratios.append((per_cpu(b) / per_cpu(a), a["saturated"] or b["saturated"]))
        cross = b.get("latency_cross_relay_us"); same = b.get("latency_same_relay_us")
        if cross:
            add50.append(cross["p50"] - a["latency_us"]["p50"]); add99.append(cross["p99"] - a["latency_us"]["p99"])
        if cross and same:
            cross_vs_same50.append(cross["p50"] - same["p50"]); cross_vs_same99.append(cross["p99"] - same["p99"])
    if ratios:
        med = statistics.median(x for x, _ in ratios)
        marked = any(m for _, m in ratios)
        if marked: notes.add("round")
        per_round = ", ".join(f"{x:.2f}" + ("*" if m else "") for x, m in ratios)
        verdict = "met" if med >= 0.5 else "NOT met"
        summary.append(f"{s}: cluster/single deliveries per CPU-second {med:.2f}x (per round {per_round}); target >= 0.5x {verdict}"
                       + (" (a saturated run in some round: compare with care)" if marked else ""))
    if add50:
        summary.append(f"{s}: added one-way latency, cross-relay minus single relay (median over rounds): p50 {statistics.median(add50):+.0f} µs, "
                       f"p99 {statistics.median(add99):+.0f} µs (per round p50 {', '.join(f'{x:+d}' for x in add50)}; p99 {', '.join(f'{x:+d}' for x in add99)})")
    if cross_vs_same50:
        summary.append(f"{s}: cross-relay minus same-relay within the cluster run (median): p50 {statistics.median(cross_vs_same50):+.0f} µs, "
                       f"p99 {statistics.median(cross_vs_same99):+.0f} µs")
    inbc = [r["nats_in_msgs_per_broadcast"] for r in by["cluster"] if r.get("nats_in_msgs_per_broadcast") is not None]
    outbc = [r["nats_out_msgs_per_broadcast"] for r in by["cluster"] if r.get("nats_out_msgs_per_broadcast") is not None]
    if inbc:
        verdict = "met" if max(inbc) <= 1.05 else "NOT met"
        summary.append(f"{s}: NATS publishes per broadcast (in_msgs / sent) {', '.join(f'{x:.3f}' for x in inbc)}; "
                       f"deliveries to the other relay per broadcast (out_msgs / sent) {', '.join(f'{x:.3f}' for x in outbc)}; "
                       f"target <= 1 publish per broadcast per node {verdict}")
        nodes = [n for r in by["cluster"] for n in r.get("relay_counters", [])]
        if nodes:
            per = {}
            for n in nodes: per.setdefault(n["node"], []).append(n)
            parts = []
            for name, ns in per.items():
                ratios_ = ", ".join("%.3f" % n["nats_published_per_frame_in"] for n in ns)
                parts.append(f"{name} {ratios_}, drops {sum(n['nats_drops'] for n in ns)}")
            summary.append(f"{s}: per relay over the window, NATS publishes per broadcast its clients sent (published / frames in), NATS drops: " + "; ".join(parts))
print()
for line in summary: print(line)
loads = [r[k] for r in rows for k in ("load_average_before", "load_average_after") if k in r]
if loads:
    print(f"\nload average (1 min) around the runs: {min(loads):.2f} to {max(loads):.2f} on {__import__('os').cpu_count()} CPUs "
          "(this script's own processes add about 2)")
if "sat" in notes or "round" in notes:
    print("\nSATURATED: the servers used at least the SATURATION share of their CPUs over the window: deliveries per CPU-second is a "
          "floor (≥), not a measurement, and a ratio with it (* per round) compares nothing. S1h stays below it.")
if "gen" in notes:
    print("under-offered: the load generator sent less than 98 % of the scenario's rate over the window (it fell behind).")
print(f"\nraw JSON lines: {sys.argv[1]}")
PY
