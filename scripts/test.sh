#!/usr/bin/env bash
# npm test: installs what the tests need, then checks the contract, the types
# and runs every unit and integration test on real PostgreSQL, Redis, NATS
# and Chromium processes (the tests start and stop their own instances).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

source scripts/node-runtime.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "Installing npm dependencies"
  npm ci --no-audit --no-fund
fi

step "Checking PostgreSQL, Redis, NATS and Chromium are installed"
bash scripts/infra.sh install
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
  else
    echo "Chromium is missing: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

step "Protobuf: buf lint and generated code"
bash scripts/check-generated.sh

step "Lint and format: biome ci (biome.jsonc; npx biome check --write . fixes what it can)"
npx biome ci --error-on-warnings .

step "TypeScript: tsc --noEmit"
npx tsc --noEmit -p tsconfig.json

step "Tests: vitest (unit + integration)"
npx vitest run "$@"
