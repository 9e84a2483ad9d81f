#!/usr/bin/env bash
# Throwaway PostgreSQL cluster and redis-server for tests (tests/replicas, the PostgreSQL store
# tests). Each lives in its own directory and listens on a free TCP port on 127.0.0.1 (PostgreSQL
# also on a unix socket inside its directory; a port taken between choosing and binding is
# retried with another one).
#   throwaway_servers.sh pg-start DIR     prints the ledger URL (postgresql://...) on stdout
#   throwaway_servers.sh pg-createdb DIR NAME  another database in a started cluster; prints its URL
#   throwaway_servers.sh pg-stop DIR
#   throwaway_servers.sh redis-start DIR  prints the Redis URL (redis://127.0.0.1:PORT)
#   throwaway_servers.sh redis-stop DIR
# Exit code 3: the server binary is not installed (callers skip). initdb refuses to run as
# root, so as root the cluster runs as the `postgres` user (runuser) in a private directory
# /tmp/tm-pg.XXXXXX that it owns (recorded in DIR/pgroot, removed by pg-stop).
set -euo pipefail
PG_BIN=${TM_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
START_TIMEOUT_S=30
PORT_ATTEMPTS=3

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_db_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 {pg-start|pg-stop|redis-start|redis-stop} DIR" >&2; exit 2; }

case "$cmd" in
  pg-start)
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)" >&2; exit 3; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
      id postgres >/dev/null 2>&1 || { echo "running as root and no 'postgres' user exists" >&2; exit 3; }
      # A private directory the postgres user owns (DIR's parents may be closed to it).
      root=$(mktemp -d /tmp/tm-pg.XXXXXX)
      chown postgres "$root"
    else
      root="$dir"
    fi
    echo "$root" >"$dir/pgroot"
    as_db_user "$PG_BIN/initdb" -D "$root/data" -U tracemark --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    started=0
    for _ in $(seq 1 "$PORT_ATTEMPTS"); do
      port=$(free_port)
      if as_db_user "$PG_BIN/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t "$START_TIMEOUT_S" \
        -o "-p $port -k $root -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start >/dev/null; then
        started=1
        break
      fi
    done
    [ "$started" = 1 ] || { cat "$root/postgres.log" >&2; exit 1; }
    as_db_user "$PG_BIN/createdb" -h "$root" -p "$port" -U tracemark tracemark
    echo "$port" >"$dir/port"
    echo "postgresql://tracemark@127.0.0.1:$port/tracemark"
    ;;
  pg-createdb)
    name=${3:?database name}
    port=$(cat "$dir/port")
    root=$(cat "$dir/pgroot")
    as_db_user "$PG_BIN/createdb" -h "$root" -p "$port" -U tracemark "$name"
    echo "postgresql://tracemark@127.0.0.1:$port/$name"
    ;;
  pg-stop)
    [ -f "$dir/pgroot" ] || exit 0
    root=$(cat "$dir/pgroot")
    [ -d "$root/data" ] && as_db_user "$PG_BIN/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1 || true
    [ "$root" != "$dir" ] && case "$root" in /tmp/tm-pg.*) rm -rf "$root" ;; esac
    rm -f "$dir/pgroot"
    ;;
  redis-start)
    command -v redis-server >/dev/null || { echo "redis-server not found (apt install redis-server)" >&2; exit 3; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for _ in $(seq 1 "$PORT_ATTEMPTS"); do
      port=$(free_port)
      rm -f "$dir/redis.pid"
      : >"$dir/redis.log"
      redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
      for _ in $(seq 1 $((START_TIMEOUT_S * 10))); do
        if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port),0.2); s.sendall(b'PING\r\n'); sys.exit(0 if s.recv(16).startswith(b'+PONG') else 1)" 2>/dev/null; then
          echo "redis://127.0.0.1:$port"
          exit 0
        fi
        # Gone (port taken): try another port.
        if [ -f "$dir/redis.pid" ] && ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then break; fi
        grep -q "Address already in use" "$dir/redis.log" 2>/dev/null && break
        sleep 0.1
      done
    done
    cat "$dir/redis.log" >&2
    exit 1
    ;;
  redis-stop)
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
