#!/usr/bin/env bash
# Starts `owl serve` on a free loopback port, runs node scripts against it, then stops it with
# SIGTERM and checks that it exits 0.
#   run.sh OWL_BINARY MODEL -- SERVE_ARGS... -- NODE_ARGS...
# MODEL may be a router config (*.yaml): then a second owl serve stands in for its hosted API.
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

# Waits for the server logging to $1 (pid $2) to answer /health; prints its URL.
wait_ready() {
  local log="$1" pid="$2" port
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then echo "e2e: owl serve exited early:" >&2; cat "$log" >&2; return 1; fi
    port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log" | head -1)"
    if [ -n "$port" ] && node -e "fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "http://127.0.0.1:$port/health"; then
      echo "http://127.0.0.1:$port"; return 0
    fi
    sleep 0.1
  done
  echo "e2e: owl serve did not become ready:" >&2; cat "$log" >&2; return 1
}

log="$(mktemp)"
upstream_pid=""
upstream_log=""
config=""
cleanup() {
  for p in ${pid:-} ${upstream_pid}; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$log" "$upstream_log" "$config"
}
trap cleanup EXIT
if [[ "$model" == *.yaml ]]; then
  # A router config: a second owl serve on the embedded model stands in for the hosted API
  # (@UPSTREAM@ in the config), and @MODEL@ is the embedded model.
  upstream_log="$(mktemp)"
  "$owl" serve -m "$here/../../models/stories260K.gguf" --host 127.0.0.1 --port 0 --parallel 2 -c 1024 -t 1 2>"$upstream_log" &
  upstream_pid=$!
  upstream="$(wait_ready "$upstream_log" "$upstream_pid")"
  config="$(mktemp --suffix .yaml)"
  sed -e "s|@UPSTREAM@|$upstream|g" -e "s|@MODEL@|$here/../../models/stories260K.gguf|g" "$model" >"$config"
  export OWL_E2E_KEY=e2e-key
  "$owl" serve --config "$config" --host 127.0.0.1 --port 0 "${serve_args[@]}" 2>"$log" &
else
  "$owl" serve -m "$model" --host 127.0.0.1 --port 0 "${serve_args[@]}" 2>"$log" &
fi
pid=$!

url="$(wait_ready "$log" "$pid")"
echo "e2e: owl serve ready at $url (pid $pid)"

status=0
(cd "$here" && OWL_URL="$url" OWL_PID="$pid" node "${node_args[@]}") || status=$?

kill -TERM "$pid"
serve_status=0
wait "$pid" || serve_status=$?
if [ "$serve_status" -ne 0 ]; then echo "e2e: owl serve exited $serve_status after SIGTERM:"; tail -20 "$log"; status=1; fi
grep -c '"event":"request"' "$log" | sed 's/^/e2e: request log lines: /'
exit "$status"
