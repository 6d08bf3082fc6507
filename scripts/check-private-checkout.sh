#!/usr/bin/env bash
# A newcomer's checkout in a private folder (root's mode-700 home, where the `postgres` user cannot
# enter): clones this repository into a fresh mode-700 folder and starts, uses and removes the dev
# cluster from there, as `make run` would. Run by scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
private="$(mktemp -d)"
chmod 700 "$private"
cleanup() {
    "$private/omniroute/scripts/pg.sh" remove dev >/dev/null 2>&1 || true
    rm -rf "$private"
}
trap cleanup EXIT
git clone -q "$ROOT" "$private/omniroute"
# The scripts as they are in this working tree, committed or not.
cp "$ROOT/scripts/pg.sh" "$private/omniroute/scripts/pg.sh"
cd "$private/omniroute"
answer="$(scripts/pg.sh with dev bash -c 'psql "$DATABASE_URL" -tAc "SELECT 40 + 2"')"
if [ "$answer" != 42 ]; then
    echo "check-private-checkout: the dev cluster of a checkout in $private did not answer ($answer)" >&2
    exit 1
fi
echo "check-private-checkout: 1 passed, 0 failed (a checkout in a mode-700 folder starts its dev cluster)"
