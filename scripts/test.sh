#!/usr/bin/env bash
# Runs every test of the workspace against the PostgreSQL in DATABASE_URL.
# Tests are I/O-bound (each has its own database), so more run at once than there are cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?DATABASE_URL must be set (make test sets it)}"
JOBS="${JOBS:-2}"
# As root, the local PostgreSQL runs as `postgres`: a checkout in a private folder must still work.
if [ "$(id -u)" -eq 0 ]; then
    scripts/check-private-checkout.sh
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --build-jobs "$JOBS" --test-threads 4 --no-fail-fast --cargo-quiet
else
    cargo test --workspace -j"$JOBS" --no-fail-fast -- --test-threads 4
fi
