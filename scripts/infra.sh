#!/usr/bin/env bash
# Private dev instances of PostgreSQL, Redis and NATS JetStream for the app.
# They live in the repo's gitignored .data/ folder and never touch the system services.
# Usage: bash scripts/infra.sh start|stop|status|install|env
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="$REPO_ROOT/.data"
LOG_DIR="$DATA_DIR/logs"
PG_PORT="${SCOREBOARD_PG_PORT:-15432}"
REDIS_PORT="${SCOREBOARD_REDIS_PORT:-16379}"
NATS_PORT="${SCOREBOARD_NATS_PORT:-14222}"
NATS_HTTP_PORT="${SCOREBOARD_NATS_HTTP_PORT:-18222}"
REDIS_DIR="$DATA_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
NATS_DIR="$DATA_DIR/nats"
NATS_PID="$NATS_DIR/nats.pid"
IS_ROOT=0; [[ $(id -u) -eq 0 ]] && IS_ROOT=1

log() { echo "[infra] $*"; }
die() { echo "[infra] error: $*" >&2; exit 1; }

pg_bindir() {
  local p
  p="$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$p" ]] && dirname "$p"
}

# Port probe without external tools (nc may not be installed).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_until <seconds> <cmd...>
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

cmd_install() {
  local missing=()
  [[ -n "$(pg_bindir)" ]] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nats-server >/dev/null || missing+=(nats-server)
  ((${#missing[@]} == 0)) && return 0
  local apt="DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server nats-server"
  if ((IS_ROOT == 0)); then
    echo "[infra] missing: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo $apt" >&2
    exit 1
  fi
  log "installing ${missing[*]} via apt-get"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server nats-server
  [[ -n "$(pg_bindir)" ]] || die "postgres binaries still missing after apt-get install"
}

# --- PostgreSQL -------------------------------------------------------------
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# postgres user, which must be able to traverse every parent of the data dir.
# We only fix permissions on dirs we own (.data); if a parent outside the repo
# is closed (e.g. repo under /root) the cluster moves to /var/tmp instead.
PG_BASE="$DATA_DIR"
as_pg() { if ((IS_ROOT)); then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_resolve_base() {
  ((IS_ROOT)) || return 0
  id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (is the postgresql package installed?)"
  mkdir -p "$DATA_DIR"
  chmod o+x "$DATA_DIR"
  if ! runuser -u postgres -- test -x "$DATA_DIR"; then
    PG_BASE="/var/tmp/scoreboard-$(printf %s "$REPO_ROOT" | sha1sum | cut -c1-12)"
    [[ "${1:-}" == quiet ]] || log "postgres: $REPO_ROOT is not traversable by user postgres; using $PG_BASE for its data"
  fi
}

pg_paths() {
  PGDATA="$PG_BASE/postgres"
  PG_SOCK="$PG_BASE/pgsock"
  PG_LOG="$PG_BASE/logs/postgres.log"
  PG_BIN="$(pg_bindir)"
}

pg_running() { [[ -n "$PG_BIN" && -f "$PGDATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; }

pg_psql() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

pg_start() {
  mkdir -p "$PGDATA" "$PG_SOCK" "$(dirname "$PG_LOG")"
  touch "$PG_LOG"
  ((IS_ROOT)) && chown postgres:postgres "$PGDATA" "$PG_SOCK" "$PG_LOG" && chmod 700 "$PGDATA"
  if pg_running; then
    log "postgres: already running on 127.0.0.1:$(sed -n 4p "$PGDATA/postmaster.pid")"
  else
    if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
      log "postgres: initdb $PGDATA"
      as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >>"$PG_LOG" 2>&1 \
        || die "initdb failed, see $PG_LOG"
    fi
    # pg_ctl passes -o through /bin/sh, hence the inner quotes around the socket path.
    as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA" -l "$PG_LOG" -w -t 60 \
      -o "-p $PG_PORT -k '$PG_SOCK' -c listen_addresses=127.0.0.1" >/dev/null \
      || die "postgres failed to start, see $PG_LOG"
    log "postgres: started on 127.0.0.1:$PG_PORT"
  fi
  if [[ "$(pg_psql -tAc "select 1 from pg_database where datname = 'scoreboard'")" != 1 ]]; then
    pg_psql -c "create database scoreboard"
    log "postgres: created database scoreboard"
  fi
}

pg_stop() {
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null
    log "postgres: stopped"
  else
    log "postgres: not running"
  fi
}

# --- Redis ------------------------------------------------------------------
redis_running() { pid_alive "$REDIS_PID"; }

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_start() {
  mkdir -p "$REDIS_DIR" "$LOG_DIR"
  if redis_running; then
    log "redis: already running (pid $(cat "$REDIS_PID"))"
    return 0
  fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --appendonly yes --appendfsync everysec --daemonize yes \
    --pidfile "$REDIS_PID" --logfile "$LOG_DIR/redis.log"
  # PING answers -LOADING until the AOF is replayed, so PONG means ready.
  wait_until 30 redis_ping || die "redis did not come up, see $LOG_DIR/redis.log"
  log "redis: started on 127.0.0.1:$REDIS_PORT"
}

redis_stop() {
  if ! redis_running; then log "redis: not running"; rm -f "$REDIS_PID"; return 0; fi
  local pid; pid="$(cat "$REDIS_PID")"
  # AOF is the persistence here, so skipping the RDB snapshot loses nothing.
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || { kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$REDIS_PID"
  log "redis: stopped"
}

# --- NATS -------------------------------------------------------------------
nats_running() { pid_alive "$NATS_PID"; }

nats_start() {
  mkdir -p "$NATS_DIR" "$LOG_DIR"
  if nats_running; then
    log "nats: already running (pid $(cat "$NATS_PID"))"
    return 0
  fi
  # setsid detaches it from this shell so Ctrl-C in the caller's terminal does not kill it.
  setsid nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_HTTP_PORT" -js -sd "$NATS_DIR" \
    --pid "$NATS_PID" -l "$LOG_DIR/nats.log" </dev/null >>"$LOG_DIR/nats.log" 2>&1 &
  # The client port opens only after JetStream has recovered its streams.
  wait_until 30 port_open "$NATS_PORT" || die "nats did not come up, see $LOG_DIR/nats.log"
  log "nats: started on 127.0.0.1:$NATS_PORT (JetStream, monitoring on 127.0.0.1:$NATS_HTTP_PORT)"
}

nats_stop() {
  if ! nats_running; then log "nats: not running"; rm -f "$NATS_PID"; return 0; fi
  local pid; pid="$(cat "$NATS_PID")"
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || { kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$NATS_PID"
  log "nats: stopped"
}

# ----------------------------------------------------------------------------
cmd_env() {
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/scoreboard"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
  echo "NATS_URL=nats://127.0.0.1:$NATS_PORT"
}

cmd_start() {
  cmd_install
  pg_resolve_base; pg_paths
  pg_start
  redis_start
  nats_start
  cmd_env
}

cmd_stop() {
  pg_resolve_base quiet; pg_paths
  nats_stop
  redis_stop
  pg_stop
}

cmd_status() {
  pg_resolve_base quiet; pg_paths
  local down=0
  if pg_running && port_open "$PG_PORT"; then log "postgres: up (127.0.0.1:$PG_PORT, data $PGDATA)"; else log "postgres: down"; down=1; fi
  if redis_running && port_open "$REDIS_PORT"; then log "redis: up (127.0.0.1:$REDIS_PORT)"; else log "redis: down"; down=1; fi
  if nats_running && port_open "$NATS_PORT"; then log "nats: up (127.0.0.1:$NATS_PORT)"; else log "nats: down"; down=1; fi
  ((down == 0)) || exit 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  install) cmd_install; log "postgres, redis-server and nats-server are installed" ;;
  env) cmd_env ;;
  *) echo "usage: bash scripts/infra.sh start|stop|status|install|env" >&2; exit 2 ;;
esac
