#!/usr/bin/env bash
# npm start: installs what is missing, starts PostgreSQL, Redis and NATS, then
# the four Scoreboard processes. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Checking Node.js"
source scripts/node-runtime.sh
echo "node $(node --version)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "Installing npm dependencies"
  npm ci --no-audit --no-fund
fi

step "Starting PostgreSQL, Redis and NATS (data in .data/)"
bash scripts/infra.sh start
if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ] || [ -z "${NATS_URL:-}" ]; then
  eval "$(bash scripts/infra.sh env | sed 's/^/export /')"
fi
# The `scoreboard` CLI (npm run token, catalog, ...) reads .env.local, so it reaches the
# same infrastructure from any terminal.
if ! grep -qs '^DATABASE_URL=' .env.local; then
  bash scripts/infra.sh env >> .env.local
fi

if [ -z "${JWT_SECRET:-}" ] && ! grep -qs '^JWT_SECRET=' .env.local; then
  step "Generating a development JWT secret into .env.local (gitignored)"
  umask 077
  echo "JWT_SECRET=$(node -e 'console.log(require("crypto").randomBytes(48).toString("base64url"))')" >> .env.local
fi

if [ -z "${EVENT_HMAC_KEYS:-}" ] && ! grep -qs '^EVENT_HMAC_KEYS=' .env.local; then
  step "Generating development event signing and encryption keys into .env.local"
  umask 077
  {
    echo "EVENT_HMAC_KEYS=dev1:$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')"
    echo "EVENT_HMAC_KEY_ID=dev1"
    echo "EVENT_ENCRYPTION_KEYS=dev1:$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')"
    echo "EVENT_ENCRYPTION_KEY_ID=dev1"
  } >> .env.local
fi

# The gateway serves only declared regions' boards (README "Limits at the edge");
# these are the ones the README's examples name.
export REGIONS="${REGIONS:-eu,us,apac}"

step "Starting score, ranking, push and the gateway"
exec node --import tsx scripts/dev.ts
