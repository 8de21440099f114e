#!/usr/bin/env bash
# Benchmarks `owl serve` at 1, 4 and 16 concurrent streaming clients (64 tokens each) on the
# 1.1B-parameter Q4_0 synthetic model (made once with owl synth), 2 threads, 16 slots.
#   bench/serve_bench.sh [OWL_BINARY] [MODEL]     (environment: THREADS, REQUESTS, CLIENTS)
# REQUESTS (default 16) is per level: 16 at 16 clients is one burst; CLIENTS=16 REQUESTS=64 keeps
# each client sending (four requests each), the sustained load of a busy server.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
owl="${1:-$root/build/apps/cli/owl}"
model="${2:-/tmp/tl-q4_0.gguf}"
vocab="$root/../shared/vocab/ggml-vocab-llama-spm.gguf"
if [ ! -f "$model" ]; then
  "$owl" synth --n-embd 2048 --n-layer 22 --n-head 32 --n-head-kv 4 --n-ff 5632 --vocab-from "$vocab" \
    --type q4_0 -o "$model"
fi
log="$(mktemp)"
"$owl" serve -m "$model" --host 127.0.0.1 --port 0 --parallel 16 -c 1024 -t "${THREADS:-2}" 2>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  grep -q "ready:" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
url="$(sed -n 's|.*listening on \(http://127.0.0.1:[0-9]*\)/.*|\1|p' "$log" | head -1)"
echo "owl serve at $url; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
node "$root/bench/serve_bench.mjs" --url "$url" --clients "${CLIENTS:-1,4,16}" --tokens 64 --requests "${REQUESTS:-16}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
