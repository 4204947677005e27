# Shared by the benchmark scripts (sourced): a free port on 127.0.0.1, and waiting (bounded,
# 5 s) until something listens on one.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORTS_TAKEN=" "
next_port() {  # sets PORT: a free port this script has not handed out before (free_port can repeat one)
  PORT=$(free_port)
  while [[ "$PORTS_TAKEN" == *" $PORT "* ]]; do PORT=$(free_port); done
  PORTS_TAKEN+="$PORT "
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1 after 5 s" >&2; return 1
}
