# Shared by the benchmark scripts (sourced): a free port on 127.0.0.1, and waiting (bounded,
# 5 s) until something listens on one.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1 after 5 s" >&2; return 1
}
