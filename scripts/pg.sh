#!/usr/bin/env bash
# A project-local PostgreSQL cluster: no system service, no prerequisites beyond the
# PostgreSQL server binaries (installed with the system package manager when missing).
#
#   scripts/pg.sh start NAME      initdb (first time) and start .omniroute/NAME; prints nothing
#   scripts/pg.sh stop NAME       stop it (no error when it is not running)
#   scripts/pg.sh url NAME [DB]   the DATABASE_URL of database DB (default omniroute) in it
#   scripts/pg.sh with NAME CMD…  start, export DATABASE_URL, run CMD, stop if we started it
#
# The cluster listens on a Unix socket inside its own folder only (no TCP port), so several
# checkouts on one machine never collide. As root, the server runs as the unprivileged
# `postgres` user (PostgreSQL refuses to run as root).
# NAME "test" is tuned for throw-away test databases (fsync off); any other name is durable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=5432

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

ensure_binaries() {
    if ! BINDIR="$(find_bindir)"; then
        echo "pg.sh: no PostgreSQL server binaries found; installing them" >&2
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else
            die "PostgreSQL is not installed and no package manager is usable; install postgresql or set DATABASE_URL"
        fi
        BINDIR="$(find_bindir)" || die "PostgreSQL still not found after installing it"
    fi
}

# Runs a server binary as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

setup() {
    NAME="${1:?cluster name}"
    DIR="$ROOT/.omniroute/$NAME"
    DATA="$DIR/data"
    SOCK="$DIR/run"
    LOG="$DIR/server.log"
    if [ "$(id -u)" -eq 0 ]; then
        OWNER=postgres
        id "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$OWNER"
    else
        OWNER="$(id -un)"
    fi
}

url() {
    local db="${1:-omniroute}"
    echo "postgres://postgres@localhost/$db?host=$SOCK&port=$PORT"
}

running() {
    [ -f "$DATA/postmaster.pid" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
    ensure_binaries
    mkdir -p "$DIR"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA" "$SOCK"
        [ "$(id -u)" -eq 0 ] && chown -R "$OWNER" "$DIR"
        as_owner "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
        {
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$SOCK'"
            echo "port = $PORT"
            echo "max_connections = 400"
            echo "shared_buffers = 256MB"
            echo "timezone = 'UTC'"
            if [ "$NAME" = test ]; then
                # Throw-away test databases: durability is not what these tests measure.
                echo "fsync = off"
                echo "synchronous_commit = off"
                echo "full_page_writes = off"
            fi
        } >>"$DATA/postgresql.conf"
    fi
    [ "$(id -u)" -eq 0 ] && chown -R "$OWNER" "$DIR"
    if running; then return 0; fi
    rm -f "$DATA/postmaster.pid"
    as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null \
        || { tail -20 "$LOG" >&2; die "the server did not start (log: $LOG)"; }
    # The application database; tests create their own next to it.
    as_owner "$BINDIR/psql" -h "$SOCK" -p "$PORT" -U postgres -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'omniroute'" | grep -q 1 \
        || as_owner "$BINDIR/createdb" -h "$SOCK" -p "$PORT" -U postgres omniroute
}

stop() {
    ensure_binaries
    if running; then
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
    start) setup "$@"; start ;;
    stop) setup "$@"; stop ;;
    url) setup "$1"; url "${2:-}" ;;
    with)
        setup "$1"; shift
        ensure_binaries
        if ! running; then
            start
            # Stop what we started however the command ends (including Ctrl-C).
            trap 'stop' EXIT
        fi
        export DATABASE_URL; DATABASE_URL="$(url)"
        "$@"
        ;;
    *) die "usage: pg.sh start|stop|url|with NAME …" ;;
esac
