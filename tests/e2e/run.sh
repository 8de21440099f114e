#!/usr/bin/env bash
# Starts `owl serve` on a free loopback port, runs node scripts against it, then stops it with
# SIGTERM and checks that it exits 0.
#   run.sh OWL_BINARY MODEL -- SERVE_ARGS... -- NODE_ARGS...
# The scripts get OWL_URL (http://127.0.0.1:PORT) and OWL_PID in their environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
owl="$1"; model="$2"; shift 2
serve_args=(); node_args=()
[ "${1:-}" = "--" ] && shift
while [ $# -gt 0 ] && [ "$1" != "--" ]; do serve_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
node_args=("$@")

if [ ! -d "$here/node_modules/openai" ] || [ ! -d "$here/node_modules/ollama" ] || [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "e2e: installing the node packages (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

log="$(mktemp)"
"$owl" serve -m "$model" --host 127.0.0.1 --port 0 "${serve_args[@]}" 2>"$log" &
pid=$!
cleanup() { kill -KILL "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

url=""
for _ in $(seq 1 600); do
  if ! kill -0 "$pid" 2>/dev/null; then echo "e2e: owl serve exited early:"; cat "$log"; exit 1; fi
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log" | head -1)"
  if [ -n "$port" ] && node -e "fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "http://127.0.0.1:$port/health"; then url="http://127.0.0.1:$port"; break; fi
  sleep 0.1
done
if [ -z "$url" ]; then echo "e2e: owl serve did not become ready:"; cat "$log"; exit 1; fi
echo "e2e: owl serve ready at $url (pid $pid)"

status=0
(cd "$here" && OWL_URL="$url" OWL_PID="$pid" node "${node_args[@]}") || status=$?

kill -TERM "$pid"
serve_status=0
wait "$pid" || serve_status=$?
trap - EXIT
if [ "$serve_status" -ne 0 ]; then echo "e2e: owl serve exited $serve_status after SIGTERM:"; tail -20 "$log"; status=1; fi
grep -c '"event":"request"' "$log" | sed 's/^/e2e: request log lines: /'
rm -f "$log"
exit "$status"
