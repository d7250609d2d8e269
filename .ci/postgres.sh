# shellcheck shell=bash
# Starts a throwaway PostgreSQL server for the store tests and exports TEST_DATABASE_URL.
#
# Usage (from .ci/run):   source .ci/postgres.sh || exit 1
#
# This file is *sourced*, so it never calls `exit`, never changes the caller's shell options and sets
# no traps (those belong to .ci/run); failures `return 1`. The server runs in the background until it
# is stopped with `sb_postgres_stop` or the CI machine goes away. Sourcing it twice reuses the running
# server. Settings: SB_PG_DIR (cluster dir, default /tmp/switchboard-ci-postgres), SB_PG_PORT (first
# port to try, default 54329).

sb_postgres_log() { printf '[postgres.sh] %s\n' "$*" >&2; }

# Prints the directory holding pg_ctl/initdb/postgres, newest major version first.
sb_postgres_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

# Runs a command as the user that owns the cluster: PostgreSQL refuses to run as root.
sb_postgres_as_owner() {
  if [ "$(id -u)" = "0" ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
sb_postgres_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

sb_postgres_start() {
  local bindir dir port tries
  dir="${SB_PG_DIR:-/tmp/switchboard-ci-postgres}"

  if ! bindir="$(sb_postgres_bindir)"; then
    sb_postgres_log "PostgreSQL is not installed; installing it with apt-get"
    # `apt-get install postgresql` would create and start a cluster of its own; it is not needed, but
    # harmless: ours has its own directory and port.
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
      sb_postgres_log "could not install postgresql"
      return 1
    fi
    bindir="$(sb_postgres_bindir)" || { sb_postgres_log "postgresql installed but pg_ctl not found"; return 1; }
  fi

  # Reuse a server that an earlier `source` of this file started.
  if [ -f "$dir/port" ] && [ -f "$dir/data/postmaster.pid" ]; then
    port="$(cat "$dir/port")"
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
      export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
      sb_postgres_log "reusing the server on port $port"
      return 0
    fi
    sb_postgres_as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi

  if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres || return 1
  fi

  rm -rf "$dir" && mkdir -p "$dir/socket" || return 1
  if [ "$(id -u)" = "0" ]; then chown -R postgres "$dir" || return 1; fi

  # trust on 127.0.0.1 only: the server is throwaway and reachable from this machine alone.
  if ! sb_postgres_as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    sb_postgres_log "initdb failed:"; cat "$dir/initdb.log" >&2
    return 1
  fi

  port="${SB_PG_PORT:-54329}"
  tries=0
  while sb_postgres_port_busy "$port"; do
    port=$((port + 1)); tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { sb_postgres_log "no free port"; return 1; }
  done

  # Durability settings off: test data is thrown away, and fsync dominates the run time otherwise.
  if ! sb_postgres_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
    sb_postgres_log "the server did not start:"; tail -n 30 "$dir/server.log" >&2
    return 1
  fi

  tries=0
  until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { sb_postgres_log "the server is not ready after 30 s"; return 1; }
    sleep 0.5
  done

  printf '%s\n' "$port" >"$dir/port"
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  sb_postgres_log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') ready: $TEST_DATABASE_URL"
}

# Stops the server started above (optional: CI tears the machine down anyway).
sb_postgres_stop() {
  local bindir dir="${SB_PG_DIR:-/tmp/switchboard-ci-postgres}"
  bindir="$(sb_postgres_bindir)" || return 0
  if [ -d "$dir/data" ]; then
    sb_postgres_as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
  return 0
}

sb_postgres_start
