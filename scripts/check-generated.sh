#!/usr/bin/env bash
# Fails when gen/ is not what `buf generate` makes from proto/ today.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf lint
npx buf generate --output "$tmp"
if ! diff -ru --exclude=package.json "$tmp/gen" gen; then
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "generated code is current"
