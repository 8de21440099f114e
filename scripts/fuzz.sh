#!/usr/bin/env bash
# Builds and runs every libFuzzer target for a bounded time. Usage: scripts/fuzz.sh BUILD_DIR SECONDS
# Seeds: tests/data/<target-without-fuzz_>/ when it exists, plus the shared files a target
# parses (chat templates, tokenizer inputs). Crashes go to BUILD_DIR/fuzz-findings.
set -euo pipefail
build=$1
seconds=$2
targets=$(cmake --build "$build" --target help | sed -n 's/^\(fuzz_[a-z_]*\):.*/\1/p' | sort -u)
findings="$build/fuzz-findings"
mkdir -p "$findings"
for target in $targets; do
  cmake --build "$build" --target "$target"
  corpus="$build/corpus-$target"
  mkdir -p "$corpus"
  seeds="tests/data/${target#fuzz_}"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  case "$target" in
    fuzz_template) cp -n ../shared/templates/*.jinja "$corpus"/ 2>/dev/null || true ;;
    fuzz_tokenizer) cp -n ../shared/vocab/*.inp "$corpus"/ 2>/dev/null || true ;;
  esac
  echo "fuzz: $target for ${seconds}s"
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/$target-" -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
done
