#!/usr/bin/env bash
# A/B of two GhostSync relay binaries on the same load generator (this build's), the method of
# docs/performance.md: ROUNDS rounds (default 6), each running every scenario once per binary,
# which binary goes first alternating by round; then per-round ratios new/old and the medians of
# deliveries per server CPU-second. On a shared VM one run swings by ±15 %, so only a median of
# interleaved rounds says anything about a few percent.
#
#   Benchmarks/ab.sh OLD_RELAY NEW_RELAY [scenario ...]      (default: S1 S3)
#   ROUNDS=8 DURATION=5s Benchmarks/ab.sh /tmp/old/ghost-sync .build/release/ghost-sync S3
#
# Build the old one in a worktree: git worktree add /tmp/old COMMIT && (cd /tmp/old &&
# swift build -c release --product ghost-sync). Raw JSON lines (with "relay": "old"/"new") go
# to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_RELAY NEW_RELAY [scenario ...]" >&2; exit 64; }
OLD=$1
NEW=$2
shift 2
SCENARIOS=${*:-"S1 S3"}
ROUNDS=${ROUNDS:-6}
OUT=${OUT:-$(mktemp /tmp/ghost-sync-ab.XXXXXX.jsonl)}
for binary in "$OLD" "$NEW"; do [ -x "$binary" ] || { echo "not an executable: $binary" >&2; exit 66; }; done
: > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for scenario in $SCENARIOS; do
    for which in $order; do
      binary=$OLD
      [ "$which" = new ] && binary=$NEW
      lines=$(mktemp)
      RELAY_BIN=$binary TARGETS=ghost ROUNDS=1 OUT="$lines" Benchmarks/compare.sh "$scenario" > /dev/null
      python3 - "$lines" "$which" "$scenario" "$round" >> "$OUT" <<'PY'
import json, sys
path, which, scenario, round_ = sys.argv[1:]
for line in open(path):
    record = json.loads(line)
    record.update({"relay": which, "scenario": scenario, "round": int(round_)})
    print(json.dumps(record))
PY
      rm -f "$lines"
    done
  done
  echo "ab: round $round of $ROUNDS done" >&2
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
records = [json.loads(line) for line in open(sys.argv[1])]
for scenario in dict.fromkeys(r["scenario"] for r in records):
    value = {}
    for r in records:
        if r["scenario"] == scenario:
            value[(r["round"], r["relay"])] = r["deliveries_per_server_cpu_second"]
    rounds = sorted({k[0] for k in value})
    ratios = [value[(n, "new")] / value[(n, "old")] for n in rounds if (n, "new") in value and (n, "old") in value]
    old = statistics.median(value[(n, "old")] for n in rounds if (n, "old") in value)
    new = statistics.median(value[(n, "new")] for n in rounds if (n, "new") in value)
    print(f"{scenario}: deliveries per server CPU-second, median old {old/1e6:.3f} M, new {new/1e6:.3f} M; "
          f"per-round new/old {', '.join(f'{x:.2f}' for x in ratios)}; median ratio {statistics.median(ratios):.3f}")
print(f"raw JSON lines: {sys.argv[1]}")
PY
