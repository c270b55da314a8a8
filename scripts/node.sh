#!/usr/bin/env bash
# `node`, but Node.js 24 (see node-runtime.sh): the npm scripts that run a
# TypeScript tool go through this, so they run on the supported runtime even
# where the system Node is older.
NODE_RUNTIME_QUIET=1 source "$(dirname "${BASH_SOURCE[0]}")/node-runtime.sh" || exit 1
exec node "$@"
