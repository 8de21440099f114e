#!/usr/bin/env bash
# Installs owl's build and test dependencies from Debian packages when they are missing.
# Safe to run repeatedly: it does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev libpcre2-dev libvalijson-dev
  libcpp-httplib-dev libyaml-cpp-dev libsqlite3-dev libssl-dev libhiredis-dev redis-server chromium
)
# node and npm for the owl serve end-to-end tests: Debian's, unless a node is already installed
# (NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The end-to-end tests' npm packages (the openai and ollama clients, ajv with ajv-formats,
# playwright-core), as package-lock.json pins them.
e2e="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e"
need_npm=0
for pkg in openai ollama ajv ajv-formats playwright-core kubernetes-models yaml; do
  [ -d "$e2e/node_modules/$pkg" ] || need_npm=1
done
if [ "$need_npm" = 1 ]; then
  echo "setup: npm ci in tests/e2e"
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
