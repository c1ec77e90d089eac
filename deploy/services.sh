#!/usr/bin/env bash
# Farm services on this machine (docs/farm.md), for a studio's first box and for tests.
#
#   deploy/services.sh db                  Postgres + Redis on localhost (installs the Debian
#                                          packages postgresql / redis-server if missing)
#   deploy/services.sh start PROJECT       db + farm instance (DAGSTER_HOME) + dagster-daemon
#                                          + dagster-webserver serving PROJECT's graph
#   deploy/services.sh worker NAME         one Celery worker (queues cpu,gpu), in the background
#   deploy/services.sh env                 the variables to export for matte submit / farm status
#   deploy/services.sh stop                stop what `start`/`worker` started (not db)
#   deploy/services.sh stop-db             stop Postgres and Redis
#
# Everything lives under $MATTE_FARM_DIR (default /tmp/matte-farm): data, logs, pid files.
# Ports: Postgres $MATTE_PG_PORT (55432), Redis $MATTE_REDIS_PORT (56379), webserver
# $MATTE_WEB_PORT (53000); chosen away from the defaults so a studio's own servers are
# never touched.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${MATTE_FARM_DIR:-/tmp/matte-farm}"
PY_BIN="${MATTE_PY_BIN:-$(dirname "$(command -v python 2>/dev/null || echo "$REPO/.venv/bin/python")")}"
[ -x "$REPO/.venv/bin/dagster" ] && [ -z "${MATTE_PY_BIN:-}" ] && PY_BIN="$REPO/.venv/bin"
export MATTE_PG_HOST="${MATTE_PG_HOST:-127.0.0.1}" MATTE_PG_PORT="${MATTE_PG_PORT:-55432}"
export MATTE_PG_USER="${MATTE_PG_USER:-matte}" MATTE_PG_PASSWORD="${MATTE_PG_PASSWORD:-matte}"
export MATTE_PG_DB="${MATTE_PG_DB:-matte}" MATTE_REDIS_PORT="${MATTE_REDIS_PORT:-56379}"
export MATTE_WEB_PORT="${MATTE_WEB_PORT:-53000}" MATTE_MAX_RUNS="${MATTE_MAX_RUNS:-16}"
export MATTE_GPUS="${MATTE_GPUS:-1}" MATTE_EXECUTOR="${MATTE_EXECUTOR:-celery}"
export MATTE_CELERY_BROKER="${MATTE_CELERY_BROKER:-redis://127.0.0.1:$MATTE_REDIS_PORT/0}"
export DAGSTER_HOME="${MATTE_FARM_HOME:-$DIR/home}"
export MATTE_PG_URL="${MATTE_PG_URL:-postgresql+psycopg2://$MATTE_PG_USER:$MATTE_PG_PASSWORD@$MATTE_PG_HOST:$MATTE_PG_PORT/$MATTE_PG_DB}"
export MATTE_DAGSTER_URL="http://127.0.0.1:$MATTE_WEB_PORT"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port seconds what
  for _ in $(seq 1 $(($2 * 5))); do port_open "$1" && return 0; sleep 0.2; done
  log "$3 did not open port $1 in $2 s (see $DIR/*.log)"; return 1
}

pg_bin() {
  local d; for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  dirname "$(command -v pg_ctl)"
}

as_pg() {  # Postgres refuses to run as root: run its tools as the `postgres` user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_missing() {
  local need=()
  command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
  command -v redis-server >/dev/null || need+=(redis-server)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]}"
  if [ "$(id -u)" != 0 ]; then log "not root: cannot apt-get install ${need[*]}"; return 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >"$DIR/apt.log" 2>&1 \
    || { apt-get update -q >>"$DIR/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$DIR/apt.log" 2>&1; }
}

start_db() {
  mkdir -p "$DIR"
  install_missing
  if ! port_open "$MATTE_PG_PORT"; then
    local bin; bin="$(pg_bin)"
    if [ ! -f "$DIR/pg/PG_VERSION" ]; then
      mkdir -p "$DIR/pg"; [ "$(id -u)" = 0 ] && chown postgres "$DIR" "$DIR/pg"
      as_pg "$bin/initdb" -D "$DIR/pg" -U "$MATTE_PG_USER" --auth=trust >"$DIR/initdb.log" 2>&1
    fi
    touch "$DIR/postgres.log"; [ "$(id -u)" = 0 ] && chown postgres "$DIR/postgres.log"
    as_pg "$bin/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w \
      -o "-p $MATTE_PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
    wait_port "$MATTE_PG_PORT" 30 postgres
  fi
  # The database of this instance (created once; a test session uses its own).
  as_pg "$(pg_bin)/createdb" -h 127.0.0.1 -p "$MATTE_PG_PORT" -U "$MATTE_PG_USER" "$MATTE_PG_DB" 2>/dev/null || true
  if ! port_open "$MATTE_REDIS_PORT"; then
    redis-server --port "$MATTE_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    wait_port "$MATTE_REDIS_PORT" 15 redis
  fi
  log "postgres :$MATTE_PG_PORT, redis :$MATTE_REDIS_PORT"
}

write_home() {
  mkdir -p "$DAGSTER_HOME"
  # The pool limit is a plain number in dagster.yaml (no env indirection there).
  sed "s/^    default_limit: 1 /    default_limit: $MATTE_GPUS /" "$REPO/deploy/dagster.yaml" >"$DAGSTER_HOME/dagster.yaml"
}

bg() {  # name cmd...: start in the background, remember the pid
  local name="$1"; shift
  nohup "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

start() {
  local project="${1:?usage: services.sh start PROJECT}"
  export MATTE_PROJECT; MATTE_PROJECT="$(cd "$project" && pwd)"
  start_db
  write_home
  cd "$REPO"
  bg daemon "$PY_BIN/dagster-daemon" run -w "$REPO/workspace.yaml"
  bg webserver "$PY_BIN/dagster-webserver" -w "$REPO/workspace.yaml" -h 127.0.0.1 -p "$MATTE_WEB_PORT"
  wait_port "$MATTE_WEB_PORT" 120 dagster-webserver
  log "farm instance $DAGSTER_HOME, webserver $MATTE_DAGSTER_URL, project $MATTE_PROJECT"
}

worker() {
  local name="${1:?usage: services.sh worker NAME [PROJECT]}"
  [ -n "${2:-}" ] && export MATTE_PROJECT="$(cd "$2" && pwd)"
  cd "$REPO"
  # One task at a time per worker (one GPU per worker on a farm); queues cpu and gpu.
  bg "worker-$name" "$PY_BIN/dagster-celery" worker start -A dagster_celery.app -y "$REPO/deploy/celery.yaml" \
    -q cpu,gpu -n "$name" -- --concurrency 1
  log "celery worker $name (log $DIR/worker-$name.log)"
}

stop() {
  local f
  for f in "$DIR"/*.pid; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in redis.pid) continue ;; esac
    local pid; pid="$(cat "$f")"
    # the process and its children (celery's pool, the daemon's run processes)
    pkill -TERM -P "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

stop_db() {
  [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  rm -f "$DIR/redis.pid"
  [ -f "$DIR/pg/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null || true
}

case "${1:-}" in
  db) start_db ;;
  start) shift; start "$@" ;;
  worker) shift; worker "$@" ;;
  stop) stop ;;
  stop-db) stop_db ;;
  env) for v in DAGSTER_HOME MATTE_DAGSTER_URL MATTE_PG_URL \
                MATTE_CELERY_BROKER MATTE_EXECUTOR MATTE_GPUS MATTE_MAX_RUNS; do echo "export $v=${!v}"; done ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
