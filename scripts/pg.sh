#!/usr/bin/env bash
# A project-local PostgreSQL cluster: no system service, no prerequisites beyond the
# PostgreSQL server binaries (installed with the system package manager when missing).
#
#   scripts/pg.sh start NAME      initdb (first time) and start .omniroute/NAME; prints nothing
#   scripts/pg.sh stop NAME       stop it (no error when it is not running)
#   scripts/pg.sh url NAME [DB]   the DATABASE_URL of database DB (default omniroute) in it
#   scripts/pg.sh with NAME CMD…  start, export DATABASE_URL, run CMD, stop if we started it
#   scripts/pg.sh remove NAME     stop it and delete its files
#
# The cluster's files live in .omniroute/NAME of the checkout, unless its owner cannot reach them
# there: as root, the server runs as `postgres`, who cannot enter a checkout in root's mode-700
# home; and a Unix socket's path has at most 107 bytes, which a deep checkout exceeds. Then they
# live in /var/lib/omniroute/<checkout hash>/NAME (as root) or $TMPDIR/omniroute-<uid>/<hash>/NAME,
# and .omniroute/NAME.location says where.
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
        # From /: the owner may not be able to enter the current folder (a private checkout).
        (cd / && runuser -u "$OWNER" -- "$@")
    else
        "$@"
    fi
}

setup() {
    NAME="${1:?cluster name}"
    case "$NAME" in *[!a-z0-9_-]*|"") die "a cluster name is letters, digits, - and _";; esac
    if [ "$(id -u)" -eq 0 ]; then
        OWNER=postgres
        id "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$OWNER"
    else
        OWNER="$(id -un)"
    fi
    DIR="$(cluster_dir)"
    DATA="$DIR/data"
    SOCK="$DIR/run"
    LOG="$DIR/server.log"
}

# Where the cluster's files are: in the checkout when its owner can reach them and the socket's
# path fits, elsewhere otherwise (see the top of this file).
cluster_dir() {
    local here="$ROOT/.omniroute/$NAME" pointer="$ROOT/.omniroute/$NAME.location"
    if [ -f "$pointer" ]; then
        cat "$pointer"
        return
    fi
    local reachable=yes
    if [ "$(id -u)" -eq 0 ] && ! runuser -u "$OWNER" -- test -x "$ROOT" 2>/dev/null; then
        reachable=no
    fi
    if [ "$reachable" = yes ] && [ "${#here}" -le 80 ]; then
        echo "$here"
        return
    fi
    local hash base
    hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)"
    if [ "$(id -u)" -eq 0 ]; then base=/var/lib/omniroute; else base="${TMPDIR:-/tmp}/omniroute-$(id -u)"; fi
    mkdir -p "$base/$hash" "$ROOT/.omniroute"
    [ "$(id -u)" -eq 0 ] && chmod 755 "$base" "$base/$hash"
    echo "$base/$hash/$NAME" | tee "$pointer"
    if [ "$reachable" = no ]; then
        echo "pg.sh: $OWNER cannot enter $ROOT (a private folder); cluster $NAME lives in $base/$hash/$NAME" >&2
    else
        echo "pg.sh: $here is too deep for a Unix socket; cluster $NAME lives in $base/$hash/$NAME" >&2
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
            || { cat "$DIR/initdb.log" >&2; die "initdb failed as $OWNER in $DATA; $OWNER must be able to enter every folder above it (or set DATABASE_URL to a PostgreSQL of your own)"; }
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

remove() {
    stop
    rm -rf "$DIR" "$ROOT/.omniroute/$NAME" "$ROOT/.omniroute/$NAME.location"
    # The checkout's folder outside it, once it holds no other cluster.
    rmdir "$(dirname "$DIR")" 2>/dev/null || true
}

cmd="${1:-}"; shift || true
case "$cmd" in
    start) setup "$@"; start ;;
    stop) setup "$@"; stop ;;
    remove) setup "$@"; remove ;;
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
    *) die "usage: pg.sh start|stop|remove|url|with NAME …" ;;
esac
