# Sourced (not run) by start.sh, test.sh, node.sh and .ci/run: makes sure the
# `node` on PATH is Node.js 24 LTS, the runtime the product supports and its
# images ship. Where the system Node is older (Debian 12 ships 18, many
# machines still have 20), it fetches the official binary from the npm
# registry (package node-linux-<arch>, about 50 MB, checked against the
# registry's integrity hash by npm) into .runtime/ (gitignored) once, and puts
# it first on PATH for this process and its children, npm included.
# NODE_RUNTIME_QUIET=1 skips the one-line notice (the CLIs set it).

SCOREBOARD_NODE_VERSION="24.22.3"
SCOREBOARD_NODE_MAJOR="${SCOREBOARD_NODE_VERSION%%.*}"

scoreboard_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(scoreboard_node_major)" -lt "$SCOREBOARD_NODE_MAJOR" ]; then
  _root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  case "$(uname -m)" in
    x86_64) _arch=x64 ;;
    aarch64 | arm64) _arch=arm64 ;;
    *) echo "No Node.js $SCOREBOARD_NODE_MAJOR package for $(uname -m): install Node.js $SCOREBOARD_NODE_VERSION yourself" >&2; return 1 ;;
  esac
  _dir="$_root/.runtime/node-v$SCOREBOARD_NODE_VERSION-linux-$_arch"
  if [ ! -x "$_dir/bin/node" ]; then
    _system="$(node --version 2>/dev/null || echo none)"
    echo "==> Node.js $_system is older than $SCOREBOARD_NODE_MAJOR: fetching node-linux-$_arch@$SCOREBOARD_NODE_VERSION from the npm registry into .runtime/" >&2
    _tmp="$(mktemp -d)"
    if ! (cd "$_tmp" && npm pack --silent "node-linux-$_arch@$SCOREBOARD_NODE_VERSION" >/dev/null); then
      rm -rf "$_tmp"
      echo "Could not fetch Node.js $SCOREBOARD_NODE_VERSION; install it (https://nodejs.org) and try again" >&2
      return 1
    fi
    mkdir -p "$_dir.partial"
    tar xzf "$_tmp"/node-linux-*.tgz -C "$_dir.partial" --strip-components=1
    rm -rf "$_tmp" "$_dir"
    mv "$_dir.partial" "$_dir"
  fi
  # npm reads its global config (a machine's registry, proxy or CA file)
  # from beside the node that runs it: keep the system's, or npm on this
  # Node could not reach the registry the system's npm reaches.
  if [ -z "${NPM_CONFIG_GLOBALCONFIG:-}" ]; then
    _globalconfig="$(npm config get globalconfig 2>/dev/null || true)"
    if [ -n "$_globalconfig" ] && [ -f "$_globalconfig" ]; then export NPM_CONFIG_GLOBALCONFIG="$_globalconfig"; fi
  fi
  export PATH="$_dir/bin:$PATH"
  if [ -z "${NODE_RUNTIME_QUIET:-}" ]; then
    echo "==> Using Node.js $(node --version) from .runtime/ (the system's is older than $SCOREBOARD_NODE_MAJOR)" >&2
  fi
  unset _root _arch _dir _tmp _system _globalconfig
fi
