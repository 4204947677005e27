#!/usr/bin/env bash
# Profiles the relay under a scenario with perf: starts `ghost-sync relay` (one worker, pinned to
# CPU 0), drives the scenario from CPU 1 for a bounded time, records call stacks for
# $SECONDS_TO_RECORD seconds, stops everything by PID, and writes the top entries and a flame
# graph to $OUT_DIR.   SCENARIO=S1 (default) | S3 | any of Benchmarks/scenarios.sh   Benchmarks/perf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/ports.sh
source Benchmarks/scenarios.sh
SCENARIO=${SCENARIO:-S1}
OUT_DIR=${OUT_DIR:-.build/perf}
SECONDS_TO_RECORD=${SECONDS_TO_RECORD:-5}
LOAD_ARGS=$(scenario_args "$SCENARIO")
mkdir -p "$OUT_DIR"
BIN=$(swift build -c release --show-bin-path)/ghost-sync
PORT=$(free_port)

taskset -c 0 "$BIN" relay --bind "127.0.0.1:$PORT" --workers 1 --cpus 0 --rooms 1000 --max-clients 20000 --no-control --no-metrics --log-level warning &
RELAY=$!
trap 'kill $RELAY 2>/dev/null || true' EXIT
sleep 0.5
# shellcheck disable=SC2086
timeout 120 taskset -c 1 "$BIN" bench --addr "127.0.0.1:$PORT" $LOAD_ARGS \
  --duration "$((SECONDS_TO_RECORD + 2))s" --warmup 1s >"$OUT_DIR/bench.txt" 2>/dev/null &
LOAD=$!
sleep 2
perf record -F 999 -g -p "$RELAY" -o "$OUT_DIR/perf.data" -- sleep "$SECONDS_TO_RECORD" 2>/dev/null
wait "$LOAD" || true
perf report -i "$OUT_DIR/perf.data" --no-children --sort dso --stdio -g none >"$OUT_DIR/by-dso.txt" 2>/dev/null
perf report -i "$OUT_DIR/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | swift demangle --simplified >"$OUT_DIR/by-symbol.txt"
{ grep -v '^#' "$OUT_DIR/by-dso.txt" | grep -v '^$' | sed -n 1,8p; echo; grep -v '^#' "$OUT_DIR/by-symbol.txt" | grep -v '^$' | sed -n 1,40p; } >"$OUT_DIR/report.txt"
perf script -i "$OUT_DIR/perf.data" 2>/dev/null | swift demangle --simplified | python3 Benchmarks/flamegraph.py >"$OUT_DIR/flamegraph.svg"
cat "$OUT_DIR/report.txt"
echo "flame graph: $OUT_DIR/flamegraph.svg; load: $OUT_DIR/bench.txt"
