# The load scenarios of docs/performance.md, as `ghost-sync bench` arguments: one definition for
# every benchmark script (sourced by compare.sh, cluster-bench.sh and perf.sh).
scenario_args() {
  case "$1" in
    S1) echo "--clients 1000 --rooms 100 --rate 20 --payload 64" ;;
    S1h) echo "--clients 1000 --rooms 100 --rate 10 --payload 64" ;;
    S2) echo "--clients 64 --rooms 1 --rate 60 --payload 64" ;;
    S2h) echo "--clients 64 --rooms 1 --rate 30 --payload 64" ;;
    S3) echo "--mode closed --clients 100 --rooms 10 --window 8 --payload 64" ;;
    L1) echo "--clients 1000 --rooms 100 --rate 5 --payload 64" ;;
    S4) echo "--clients 10000 --rooms 1000 --rate 0.05 --payload 64" ;;
    *) echo "unknown scenario $1 (S1 S1h S2 S2h S3 L1 S4)" >&2; return 64 ;;
  esac
}
