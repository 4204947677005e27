#!/usr/bin/env bash
# Autobahn TestSuite conformance run against a WebSocket *echo* endpoint.
#
#   Tests/Autobahn/run.sh ws://127.0.0.1:9001
#
# Cases 1.*-7.*, 9.* and 10.* (12.*/13.* test permessage-deflate, which the relay declines).
# 9.* cases whose messages exceed AUTOBAHN_MAX_MESSAGE bytes (default 65536) are left out.
# autobahntestsuite is Python 2.7 only; without a Python 2.7 this prints SKIPPED and exits 0.
#
# Environment:
#   AUTOBAHN_MAX_MESSAGE  largest 9.* message to send, in bytes (default 65536)
#   AUTOBAHN_TIMEOUT      seconds the fuzzingclient may run before it is killed (default 600)
#   AUTOBAHN_AGENT        agent name in the reports (default ghost-sync)
#   AUTOBAHN_BASELINE     NON-STRICT baseline (default Tests/Autobahn/expected-non-strict.txt;
#                         "none" or a missing file means no baseline check)
#   AUTOBAHN_CASES        case patterns instead of the default list, e.g. "5.* 7.*"
#   AUTOBAHN_PYTHON2      a Python 2.7 interpreter to use before searching for one
#   AUTOBAHN_WORK         work directory (default .build/autobahn in the repository)
#
# Exit status: 0 all cases pass (or SKIPPED), 1 a case FAILED / missing / new NON-STRICT,
# 2 usage or setup error, 124 the fuzzingclient hit AUTOBAHN_TIMEOUT.
set -euo pipefail

if [ $# -ne 1 ] || [[ "$1" != ws://* ]]; then
  echo "usage: $0 ws://HOST:PORT[/PATH]" >&2
  exit 2
fi
URL=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${AUTOBAHN_WORK:-$ROOT/.build/autobahn}
SITE=$WORK/site
REPORTS=$WORK/reports
VERSION=25.10.1
MAX_MESSAGE=${AUTOBAHN_MAX_MESSAGE:-65536}
TIMEOUT=${AUTOBAHN_TIMEOUT:-600}
AGENT=${AUTOBAHN_AGENT:-ghost-sync}
BASELINE=${AUTOBAHN_BASELINE:-$HERE/expected-non-strict.txt}

is_python27() {
  [ -n "$1" ] && [ -x "$1" ] &&
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1
}

find_python27() {
  local candidates=() prefix p
  [ -n "${AUTOBAHN_PYTHON2:-}" ] && candidates+=("$AUTOBAHN_PYTHON2")
  if command -v pyenv >/dev/null 2>&1; then
    for v in 2.7.18 2.7; do
      prefix=$(pyenv prefix "$v" 2>/dev/null) && candidates+=("$prefix/bin/python")
    done
  fi
  # pyenv need not be on PATH (CI gets a reduced environment): look in its usual roots too.
  for p in "${PYENV_ROOT:-}" "${HOME:-/root}/.pyenv" /root/.pyenv; do
    [ -n "$p" ] || continue
    for prefix in "$p"/versions/2.7*; do candidates+=("$prefix/bin/python"); done
  done
  for p in python2.7 python2 pypy; do
    command -v "$p" >/dev/null 2>&1 && candidates+=("$(command -v "$p")")
  done
  for p in "${candidates[@]}"; do
    if is_python27 "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

if ! PY27=$(find_python27); then
  echo "################################################################"
  echo "SKIPPED: no Python 2.7 (Autobahn TestSuite needs it)"
  echo "  looked at: \$AUTOBAHN_PYTHON2, pyenv prefix 2.7.18, ~/.pyenv/versions/2.7*, python2.7, python2, pypy"
  echo "  no WebSocket conformance case was run against $URL"
  echo "################################################################"
  exit 0
fi
echo "autobahn: Python 2.7 at $PY27"

mkdir -p "$WORK"
MARKER=$SITE/.autobahntestsuite-$VERSION
if [ -f "$MARKER" ]; then
  echo "autobahn: autobahntestsuite $VERSION already installed in $SITE"
else
  echo "autobahn: installing autobahntestsuite==$VERSION into $SITE (about a minute)"
  rm -rf "$SITE" "$SITE.partial"
  start=$(date +%s)
  if ! timeout 600 "$PY27" -m pip install --quiet --no-warn-script-location --target "$SITE.partial" \
      "autobahntestsuite==$VERSION" >"$WORK/pip.log" 2>&1; then
    tail -n 30 "$WORK/pip.log"
    echo "autobahn: pip install of autobahntestsuite==$VERSION failed (log: $WORK/pip.log)" >&2
    exit 2
  fi
  mv "$SITE.partial" "$SITE"
  touch "$MARKER"
  echo "autobahn: installed in $(( $(date +%s) - start )) s"
fi

# site.addsitedir, not PYTHONPATH: only it processes zope's namespace .pth file.
run_py27() {
  "$PY27" -c 'import site, sys; site.addsitedir(sys.argv[1]); sys.argv = sys.argv[2:]; execfile(sys.argv[0], {"__name__": "__main__"})' \
    "$SITE" "$@"
}

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
run_py27 "$HERE/make_spec.py" "$URL" "$AGENT" "$REPORTS" "$MAX_MESSAGE" \
  "$WORK/spec.json" "$WORK/cases.txt" "${AUTOBAHN_CASES:-}" ||
  { echo "autobahn: could not write the spec (make_spec.py failed)" >&2; exit 2; }

echo "autobahn: fuzzingclient -> $URL (agent $AGENT, at most $TIMEOUT s; log $WORK/fuzzingclient.log)"
start=$(date +%s)
status=0
( cd "$WORK" && timeout --kill-after=10 "$TIMEOUT" "$PY27" -c \
    'import site, sys; site.addsitedir(sys.argv.pop(1)); sys.argv[0] = "wstest"; from autobahntestsuite.wstest import run; run()' \
    "$SITE" -m fuzzingclient -s "$WORK/spec.json" ) >"$WORK/fuzzingclient.log" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ]; then
  tail -n 40 "$WORK/fuzzingclient.log" | cut -c 1-300
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    # Reports are written only at the end of a run, so a hung run leaves none: name the case.
    last=$(grep -o 'Running test case ID [0-9.]*' "$WORK/fuzzingclient.log" | tail -n 1 || true)
    last=${last#Running test case ID }
    echo "autobahn: FAILED: fuzzingclient did not finish within $TIMEOUT s, no report written;" \
      "last case started: ${last:-none (did the opening handshake ever complete?)}" >&2
    exit 124
  fi
  echo "autobahn: FAILED: fuzzingclient exited with status $status after $elapsed s" >&2
  exit 2
fi
echo "autobahn: fuzzingclient finished in $elapsed s"
# A refused connection ends the whole run early: the cases after it show up as MISSING.
grep -E '^Connection to .* failed' "$WORK/fuzzingclient.log" | sed 's/^/autobahn: fuzzingclient: /' || true

baseline_args=()
[ "$BASELINE" = none ] || baseline_args=(--baseline "$BASELINE")
python3 "$HERE/summary.py" "$REPORTS" --cases "$WORK/cases.txt" "${baseline_args[@]}"
