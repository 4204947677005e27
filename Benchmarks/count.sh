#!/usr/bin/env bash
# Counts what a delivery costs the relay, in figures that the machine's load cannot move:
# user-space instructions (valgrind's callgrind) and syscalls (strace -c) per delivered frame,
# under a bounded S3-shaped load (closed loop; 100 clients, 10 rooms, 8 in flight, 64 B by
# default). The release relay runs with one worker; the load generator (`ghost-sync bench`, not
# traced) runs on another CPU.
#
# The measured window is exact: the generator is stopped (SIGSTOP) and the relay left to go
# idle (its frame counter steady) before the counts are zeroed and again before they are read,
# so the instructions and the relay's own counters (`/metrics`: frames out = deliveries, frames
# in, reads, writes, loop iterations) cover the same loop iterations. Pings and idle timers are
# pushed out of the window (--ping-interval/--idle-timeout 1h).
#
#   Benchmarks/count.sh                  # callgrind, then native
#   MODE=callgrind Benchmarks/count.sh   # or MODE=native, MODE=strace, MODE=all
#
# callgrind: user-space instructions per delivery and the top functions (the relay runs ~50x
# slower under valgrind, so it batches more than at full speed: frames per write are printed
# beside each figure). native: the relay at full speed; syscalls (tracepoints) and, with
# MALLOCS=1, mallocs (uprobes) per delivery from `perf stat`. strace: the same syscall counts as strace -c -f sees
# them (slowed by ptrace, so batching is again larger).
#   CALLGRIND_ARGS=--dump-instr=yes (cost per instruction address, for a look at the hot loops)
#   WINDOW=10 CLIENTS=100 ROOMS=10 INFLIGHT=8 PAYLOAD=64 RELAY_BIN=path Benchmarks/count.sh
#
# Writes to $OUT_DIR (default .build/count): summary.txt (the figures), callgrind.out.* (open
# with callgrind_annotate), top.txt (top functions by exclusive and inclusive Ir, per delivery,
# from Benchmarks/callgrind_top.py), strace.txt. Only the worker thread's instructions count (callgrind
# --separate-threads; the thread with the most Ir in the window); the whole process's total is
# printed beside it. Everything is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/ports.sh
MODE=${MODE:-both}
WINDOW=${WINDOW:-10}
WARMUP=${WARMUP:-4}
CLIENTS=${CLIENTS:-100}
ROOMS=${ROOMS:-10}
INFLIGHT=${INFLIGHT:-8}
PAYLOAD=${PAYLOAD:-64}
TRANSPORT=${TRANSPORT:-tcp}
OUT_DIR=${OUT_DIR:-.build/count}
# The relay: `RelayService` (what `ghost-sync relay` runs) behind a synchronous main
# (Sources/GhostSyncCountRelay: valgrind 3.19 crashes on the CLI's async main).
if [ -z "${RELAY_BIN:-}" ]; then swift build -c release --product ghost-sync-count-relay >/dev/null; fi
if [ -z "${LOAD_BIN:-}" ]; then swift build -c release --product ghost-sync >/dev/null; fi
BIN=${RELAY_BIN:-$(swift build -c release --show-bin-path)/ghost-sync-count-relay}
LOAD_BIN=${LOAD_BIN:-$(swift build -c release --show-bin-path)/ghost-sync}
mkdir -p "$OUT_DIR"
# valgrind 3.19 cannot read the DWARF 5 that Swift 6.3 emits ("unhandled dwarf2 abbrev form"):
# the relay runs from a copy without debug info. Its symbol table stays, so functions keep names.
objcopy --strip-debug "$BIN" "$OUT_DIR/relay-nodebug"
BIN=$OUT_DIR/relay-nodebug
rm -f "$OUT_DIR"/callgrind.out.*

RELAY=""; LOAD=""; TRACER=""
cleanup() {
  for pid in $LOAD; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in $TRACER $RELAY; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $LOAD $TRACER $RELAY; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

metric() {  # metric NAME -> worker 0's value of ghostsync_NAME
  curl -s --max-time 20 "http://127.0.0.1:$METRICS/metrics" |
    awk -v n="ghostsync_$1{worker=\"0\"}" '$1 == n { print $2 }'
}
snapshot() {  # frames_out frames_in read_calls write_calls loop_iterations
  local text
  text=$(curl -s --max-time 20 "http://127.0.0.1:$METRICS/metrics")
  for name in frames_out_total frames_in_total read_calls_total write_calls_total loop_iterations_total; do
    awk -v n="ghostsync_$name{worker=\"0\"}" '$1 == n { printf "%s ", $2 }' <<<"$text"
  done
  echo
}
# Stops the generator and waits until the relay has relayed everything in flight.
quiesce() {
  kill -STOP "$LOAD"
  local last=-1 now
  for _ in $(seq 1 120); do
    sleep 0.5
    now=$(metric frames_out_total)
    [ "$now" = "$last" ] && return 0
    last=$now
  done
  echo "relay did not go idle" >&2; return 1
}

start_relay() {  # start_relay PREFIX... : the relay under PREFIX (valgrind, or nothing)
  PORT=$(free_port); METRICS=$(free_port)
  local ws_args=()
  if [ "$TRANSPORT" = ws ]; then WS_PORT=$(free_port); ws_args=(--ws "127.0.0.1:$WS_PORT"); fi
  taskset -c 0 "$@" "$BIN" --bind "127.0.0.1:$PORT" --cpus 0 --rooms "$ROOMS" \
    --metrics "127.0.0.1:$METRICS" --ping-interval 3600 --idle-timeout 3600 \
    "${ws_args[@]}" >"$OUT_DIR/relay.out" 2>"$OUT_DIR/relay.err" &
  RELAY=$!
  for _ in $(seq 1 600); do
    grep -q ready "$OUT_DIR/relay.out" 2>/dev/null && break
    kill -0 "$RELAY" 2>/dev/null || { cat "$OUT_DIR/relay.err" >&2; exit 1; }
    sleep 0.1
  done
  grep -q ready "$OUT_DIR/relay.out" || { echo "relay not ready" >&2; exit 1; }
}
start_load() {
  local target=(--addr "127.0.0.1:$PORT")
  [ "$TRANSPORT" = ws ] && target=(--transport ws --ws-addr "127.0.0.1:$WS_PORT")
  taskset -c 1 "$LOAD_BIN" bench "${target[@]}" --mode closed --clients "$CLIENTS" --rooms "$ROOMS" \
    --window "$INFLIGHT" --payload "$PAYLOAD" --duration 60m --warmup 0s >"$OUT_DIR/bench.txt" 2>&1 &
  LOAD=$!
  sleep "$WARMUP"
  kill -0 "$LOAD" 2>/dev/null || { echo "load generator ended early:" >&2; cat "$OUT_DIR/bench.txt" >&2; exit 1; }
}
stop_all() { cleanup; RELAY=""; LOAD=""; TRACER=""; }
# start_settled PREFIX...: the relay (under PREFIX) and the generator, warmed up, then idle.
start_settled() { start_relay "$@"; start_load; quiesce; }
# The counted window: an idle snapshot, the generator on for WINDOW seconds, idle again, a
# second snapshot; prints the relay's counters for it and sets DELIVERIES.
measure_window() {
  local before after
  before=$(snapshot)
  kill -CONT "$LOAD"
  sleep "$WINDOW"
  quiesce
  after=$(snapshot)
  ratios "$before" "$after"
}

# ratios BEFORE AFTER -> sets DELIVERIES and prints the relay's own counters for the window
ratios() {
  read -r out0 in0 reads0 writes0 loops0 <<<"$1"
  read -r out1 in1 reads1 writes1 loops1 <<<"$2"
  DELIVERIES=$((out1 - out0))
  local frames_in=$((in1 - in0)) reads=$((reads1 - reads0)) writes=$((writes1 - writes0)) loops=$((loops1 - loops0))
  [ "$DELIVERIES" -gt 0 ] || { echo "no deliveries in the window" >&2; exit 1; }
  python3 - "$DELIVERIES" "$frames_in" "$reads" "$writes" "$loops" <<'PY'
import sys
d, fin, r, w, l = map(int, sys.argv[1:])
print(f"  window: {d} deliveries, {fin} frames in, {r} reads, {w} writes, {l} loop iterations")
print(f"  frames per read {fin / max(r, 1):.2f}, frames per write {d / max(w, 1):.2f}, deliveries per iteration {d / max(l, 1):.1f}")
print(f"  relay's counters: (reads + writes + epoll_waits) per delivery {(r + w + l) / d:.4f}")
PY
}

run_callgrind() {
  echo "== callgrind: instructions per delivery (S3 shape: $CLIENTS clients, $ROOMS rooms, $INFLIGHT in flight, $PAYLOAD B, $TRANSPORT)"
  # shellcheck disable=SC2086
  start_settled valgrind --tool=callgrind --separate-threads=yes ${CALLGRIND_ARGS:-} --callgrind-out-file="$OUT_DIR/callgrind.out.%p"
  callgrind_control -z "$RELAY" >/dev/null
  measure_window
  callgrind_control -d "$RELAY" >/dev/null
  stop_all
  # The dump of the window is part 1 (`.1`); one file per thread.
  local files best="" best_ir=0 total=0 ir
  files=$(ls "$OUT_DIR"/callgrind.out.*.1-* 2>/dev/null || true)
  [ -n "$files" ] || { echo "no callgrind dump found" >&2; ls "$OUT_DIR" >&2; exit 1; }
  for f in $files; do
    ir=$(awk '/^summary:/ { print $2 }' "$f")
    total=$((total + ir))
    if [ "$ir" -gt "$best_ir" ]; then best_ir=$ir; best=$f; fi
  done
  python3 - "$best_ir" "$total" "$DELIVERIES" <<'PY'
import sys
worker, total, d = map(int, sys.argv[1:])
print(f"  worker thread: {worker} Ir = {worker / d:.1f} instructions per delivery  (whole process {total / d:.1f})")
PY
  echo "  worker thread's dump: $best"
  python3 Benchmarks/callgrind_top.py "$best" "$DELIVERIES" "${ROWS:-25}" | swift demangle --simplified | tee "$OUT_DIR/top.txt"
}

run_strace() {
  echo "== strace -c -f: syscalls per delivery (same load, relay not under valgrind)"
  start_settled
  strace -c -f -q -p "$RELAY" -o "$OUT_DIR/strace.txt" &
  TRACER=$!
  sleep 2  # attached to every thread; the relay is idle meanwhile
  measure_window
  kill -INT "$TRACER"; wait "$TRACER" 2>/dev/null || true; TRACER=""
  stop_all
  python3 - "$OUT_DIR/strace.txt" "$DELIVERIES" <<'PY'
import sys
path, d = sys.argv[1], int(sys.argv[2])
total = 0
rows = []
for line in open(path):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
        calls = int(parts[3])
        rows.append((calls, parts[-1]))
        total += calls
rows.sort(reverse=True)
print(f"  strace: {total} syscalls = {total / d:.4f} per delivery (the metrics scrapes' own calls included: a few dozen)")
for calls, name in rows[:8]:
    print(f"    {name:14s} {calls:9d}  {calls / d:.4f} per delivery")
PY
}

# Native: the relay at full speed (its batching as in a real run), syscalls by tracepoint and,
# with MALLOCS=1, mallocs by uprobe, counted with `perf stat` over the same exact window. The
# malloc probes are added if missing and removed again if this run added them.
run_native() {
  echo "== native (perf stat tracepoints and uprobes): syscalls and mallocs per delivery"
  local libc added=""
  libc=$(ldd "$BIN" | awk '/libc.so.6/ { print $3 }')
  for fn in malloc posix_memalign; do
    [ "${MALLOCS:-0}" = 1 ] || break
    if ! perf probe -l 2>/dev/null | grep -q "probe_libc:$fn "; then
      perf probe -q -x "$libc" --add "$fn" && added="$added $fn"
    fi
  done
  start_settled
  local events=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto
  events=$events,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl
  # A uprobe hit costs microseconds: with mallocs on the relay path they slow it down enough to
  # change its batching, so they are counted only when asked (MALLOCS=1), in a run of their own.
  [ "${MALLOCS:-0}" = 1 ] && events=$events,probe_libc:malloc,probe_libc:posix_memalign
  perf stat -x, -e "$events" -p "$RELAY" -o "$OUT_DIR/perf-stat.txt" &
  TRACER=$!
  sleep 1
  measure_window
  kill -INT "$TRACER"; wait "$TRACER" 2>/dev/null || true; TRACER=""
  stop_all
  for fn in $added; do perf probe -q --del "probe_libc:$fn" || true; done
  python3 - "$OUT_DIR/perf-stat.txt" "$DELIVERIES" <<'PY'
import sys
path, d = sys.argv[1], int(sys.argv[2])
for line in open(path):
    parts = line.strip().split(",")
    if len(parts) < 3 or not parts[0].strip().isdigit():
        continue
    print(f"    {parts[2]:34s} {int(parts[0]):9d}  {int(parts[0]) / d:.4f} per delivery")
PY
}

{
  # The runs happen in this pipeline's subshell, which does not inherit the EXIT trap: without
  # its own, a reader that stops early (| head) would leave the relay running.
  trap cleanup EXIT
  case "$MODE" in
    callgrind) run_callgrind ;;
    strace) run_strace ;;
    native) run_native ;;
    both) run_callgrind; run_native ;;
    all) run_callgrind; run_native; run_strace ;;
    *) echo "MODE is callgrind, native, strace, both (callgrind and native) or all" >&2; exit 64 ;;
  esac
} | tee "$OUT_DIR/summary.txt"
