#!/usr/bin/env bash
# owl eval against the same cases run one at a time with owl run: N story openings on the
# embedded model, greedy, MAX_TOKENS tokens each. Prints both wall times and their ratio;
# alternates them ROUNDS times, with owl eval -j 1 (one case at a time, in one process) between, to
# tell batching's share from process starts'. Usage: bench/eval_vs_run.sh [N] [MAX_TOKENS] [ROUNDS]
set -euo pipefail
n=${1:-200}
max_tokens=${2:-16}
rounds=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
owl="$root/build/apps/cli/owl"
model="$root/models/stories260K.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openings=("Once upon a time" "Lily and Tom went to the" "One day, a little boy named Tim saw a big" "The sun was shining and"
          "Mom said, \"Let's go to the" "There was a big tree in the" "She wanted to play with her" "The dog liked to")
: > "$work/cases.jsonl"
for ((i = 0; i < n; i++)); do
  # Distinct prompts: an opening and a case number, so that nothing is shared by accident.
  printf '{"id": "c%d", "story": "%s %d", "expected": "x"}\n' "$i" "${openings[i % ${#openings[@]}]//\"/\\\"}" "$i" >> "$work/cases.jsonl"
done
cat > "$work/suite.yaml" <<YAML
cases: cases.jsonl
prompt: "{{story}}"
max_tokens: $max_tokens
scorers: [{type: length, min: 0}]
candidates: [{model: $model}]
YAML
now() { date +%s.%N; }
for ((r = 1; r <= rounds; r++)); do
  t0=$(now)
  "$owl" eval "$work/suite.yaml" -q --no-cache --cache-dir "$work/cache" -t 2 > /dev/null
  t1=$(now)
  "$owl" eval "$work/suite.yaml" -q --no-cache --cache-dir "$work/cache" -t 2 -j 1 > /dev/null
  tj=$(now)
  while IFS= read -r line; do
    prompt=$(printf '%s' "$line" | sed 's/.*"story": "\(.*\)", "expected".*/\1/; s/\\"/"/g')
    "$owl" run -m "$model" -p "$prompt" -n "$max_tokens" --temp 0 -t 2 --no-echo > /dev/null 2>&1
  done < "$work/cases.jsonl"
  t2=$(now)
  awk -v e="$(echo "$t1 - $t0" | bc)" -v j="$(echo "$tj - $t1" | bc)" -v s="$(echo "$t2 - $tj" | bc)" -v r="$r" \
    'BEGIN { printf "round %d: owl eval %.2f s | owl eval -j 1 %.2f s (%.1fx) | owl run one at a time %.2f s (%.1fx)\n", r, e, j, j / e, s, s / e }'
done
