#!/usr/bin/env bash
# The patched actix-http of vendor/ (vendor/README.md) is the actix-http the workspace builds with.
# Cargo drops a [patch.crates-io] entry that no longer matches what the dependencies ask for with
# only a warning and resolves the crates.io release instead: the build still passes, and every idle
# desk quietly holds 16 KiB of buffers again. This check fails instead. Run by `make lint`.
#
#   scripts/check-vendored.sh [ROOT]    ROOT: the workspace to check (default: this checkout)
set -euo pipefail
ROOT="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
VENDORED="$ROOT/vendor/actix-http"
LOCK="$ROOT/Cargo.lock"
CARGO="${CARGO:-cargo}"

fail() {
    echo "check-vendored: $1" >&2
    echo "check-vendored: fix: $2" >&2
    exit 1
}

UPGRADE="carry the patch over to the actix-http release the dependencies now need, as vendor/README.md
  (\"Re-applying the patch to a newer actix-http\") describes, then run \`cargo update -p actix-http\`;
  or, if that release releases idle buffers itself, drop vendor/actix-http and the [patch.crates-io] entry"

[ -f "$VENDORED/Cargo.toml" ] ||
    fail "$VENDORED/Cargo.toml is missing" "restore vendor/actix-http from git (git checkout -- vendor/actix-http)"
grep -q 'Omniroute:' "$VENDORED/src/h1/dispatcher.rs" 2>/dev/null ||
    fail "vendor/actix-http/src/h1/dispatcher.rs does not carry the change marked \"Omniroute\"" \
        "apply vendor/actix-http.patch in vendor/actix-http (patch -p1 < ../actix-http.patch)"
vendored_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$VENDORED/Cargo.toml" | head -n 1)"

grep -q '^actix-http = { path = "vendor/actix-http" }' "$ROOT/Cargo.toml" ||
    fail "Cargo.toml has no [patch.crates-io] entry actix-http = { path = \"vendor/actix-http\" }" \
        "add it back under [patch.crates-io] in the workspace's Cargo.toml"

# Cargo.lock: one actix-http, without a `source` (a path dependency), at the vendored version.
[ -f "$LOCK" ] || fail "$LOCK is missing" "run cargo generate-lockfile, then this check again"
packages="$(awk '
    function flush() { if (package && name == "actix-http") print version "|" source }
    /^\[/        { flush(); package = ($0 == "[[package]]"); name = ""; version = ""; source = "" }
    /^name = /    { name = $3; gsub(/"/, "", name) }
    /^version = / { version = $3; gsub(/"/, "", version) }
    /^source = /  { source = $3; gsub(/"/, "", source) }
    END { flush() }
' "$LOCK")"
count="$(printf '%s' "$packages" | grep -c . || true)"
[ "$count" -eq 1 ] ||
    fail "Cargo.lock holds $count actix-http packages ($(printf '%s' "$packages" | sed 's/|$/ (path)/; s/|\(..*\)/ from \1/' | paste -sd ';' | sed 's/;/; /g')), not one: the vendored patch is not the only actix-http in use" "$UPGRADE"
version="${packages%%|*}"
source="${packages#*|}"
[ -z "$source" ] ||
    fail "Cargo.lock resolves actix-http $version from $source, not from vendor/actix-http: the patch is not in use" "$UPGRADE"
[ "$version" = "$vendored_version" ] ||
    fail "Cargo.lock has actix-http $version, vendor/actix-http is $vendored_version" \
        "run cargo update -p actix-http so the lock file takes the vendored copy"
if grep -q '^\[\[patch.unused\]\]' "$LOCK" && awk '/^\[\[patch.unused\]\]/ { p = 1 } p && /^name = "actix-http"/ { found = 1 } END { exit !found }' "$LOCK"; then
    fail "Cargo.lock lists the vendored actix-http under [[patch.unused]]" "$UPGRADE"
fi

# What cargo itself builds with (host platform, as `cargo build` resolves it).
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
if ! tree="$(cd "$ROOT" && "$CARGO" tree --locked -i actix-http --prefix none --depth 0 -e normal,build,dev 2>"$errors")"; then
    fail "cargo tree -i actix-http failed: $(cat "$errors")" "$UPGRADE"
fi
[ "$tree" = "actix-http v$vendored_version ($VENDORED)" ] ||
    fail "cargo builds with \"$tree\", not the vendored actix-http v$vendored_version ($VENDORED) $(cat "$errors")" "$UPGRADE"

echo "check-vendored: actix-http v$vendored_version is vendor/actix-http, patched (vendor/README.md)"
