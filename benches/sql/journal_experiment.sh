#!/usr/bin/env bash
# The journal's SQL alone: `engine_apply_batch` as migrated against the same events written
# set-based (benches/sql/journal_experiment.sql), in a scratch database created, migrated and
# dropped here. Figures and their meaning: docs/performance.md.
#
#   scripts/pg.sh with bench benches/sql/journal_experiment.sh [EVENTS_PER_BATCH] [EVENTS_PER_APPROACH]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${DATABASE_URL:?DATABASE_URL must be set (run through scripts/pg.sh with bench)}"
per_batch="${1:-200}"
total="${2:-20000}"
per=$((per_batch / 2))
rounds=$((total / per_batch))

psql_bin="$(command -v psql || true)"
[ -n "$psql_bin" ] || psql_bin="$(pg_config --bindir)/psql"

db="journal_experiment_$$"
head="${DATABASE_URL%%\?*}"
query=""
[[ "$DATABASE_URL" == *\?* ]] && query="?${DATABASE_URL#*\?}"
url="${head%/*}/$db$query"

"$psql_bin" "$DATABASE_URL" -qX -c "CREATE DATABASE $db"
trap '"$psql_bin" "$DATABASE_URL" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for up in migrations/*/up.sql; do
    "$psql_bin" "$url" -qX -v ON_ERROR_STOP=1 -f "$up" >/dev/null
done
"$psql_bin" "$url" -qX -v per="$per" -v rounds="$rounds" -f benches/sql/journal_experiment.sql 2>&1 \
    | sed -n 's/.*NOTICE:  //p'
