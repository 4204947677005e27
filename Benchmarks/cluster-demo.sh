#!/usr/bin/env bash
# make cluster-demo: three nats-servers in one NATS cluster and two relays on loopback, then
# instructions to join each. Everything it starts is stopped, by PID, on Ctrl-C or exit.
#
#   Benchmarks/cluster-demo.sh [GHOST_SYNC_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$(swift build -c release --show-bin-path)/ghost-sync}
DIR=$(mktemp -d /tmp/ghost-sync-cluster-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

routes="nats-route://127.0.0.1:6301, nats-route://127.0.0.1:6302, nats-route://127.0.0.1:6303"
for i in 1 2 3; do
  cat > "$DIR/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:430$i
http: 127.0.0.1:830$i
ping_interval: "2s"
ping_max: 2
cluster { name: ghost-demo, listen: 127.0.0.1:630$i, routes: [ $routes ] }
jetstream { store_dir: "$DIR/js$i" }
CONF
  nats-server -c "$DIR/n$i.conf" > "$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
# Up when every server reports two routes.
for _ in $(seq 1 100); do
  up=0
  for i in 1 2 3; do
    curl -fs "http://127.0.0.1:830$i/routez" 2>/dev/null | grep -q '"num_routes": 2' && up=$((up + 1))
  done
  [ "$up" = 3 ] && break
  sleep 0.1
done
URLS=nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303
for node in 1 2; do
  "$BIN" relay --bind 127.0.0.1:780$node --ws 127.0.0.1:779$node --control 127.0.0.1:888$node \
    --metrics 127.0.0.1:977$node --cluster "$URLS" --node "relay-$node" --registry-replicas 3 > "$DIR/relay-$node.out" 2> "$DIR/relay-$node.log" &
  PIDS+=($!)
done
for node in 1 2; do
  # The first start waits for JetStream to elect its leaders and for the registry bucket.
  for _ in $(seq 1 300); do grep -q "ghost-sync ready" "$DIR/relay-$node.out" 2>/dev/null && break; sleep 0.1; done
  head -1 "$DIR/relay-$node.out"
done
cat <<TEXT

Cluster up: NATS servers n1..n3 on 127.0.0.1:4301-4303, relays relay-1 and relay-2.

  terminal on relay-1:   $BIN join lobby --addr 127.0.0.1:7801
  terminal on relay-2:   $BIN join lobby --addr 127.0.0.1:7802
  browser on relay-1:    http://127.0.0.1:7791/        browser on relay-2: http://127.0.0.1:7792/
  live relays:           $BIN admin nodes --control 127.0.0.1:8881
  rooms are cluster-wide: $BIN admin create arena --control 127.0.0.1:8881; $BIN admin rooms --control 127.0.0.1:8882
  cluster metrics:       curl -s http://127.0.0.1:9771/metrics | grep cluster

Try killing a NATS server (kill PID of n1: pgrep -f n1.conf): the relays move to another.
Logs in $DIR. Ctrl-C stops everything.
TEXT
wait
