#!/usr/bin/env bash
# Installs, with the system package manager, what building and testing need and the machine
# lacks: libpq's headers (diesel links libpq), the PostgreSQL server binaries, and for
# `scripts/deps.sh test` Debian's Chromium and its WebDriver (the desk's browser tests), Dovecot and
# aiosmtpd (the email tests' IMAP and SMTP servers).
set -euo pipefail
missing=()
command -v pg_config >/dev/null 2>&1 && [ -e "$(pg_config --includedir 2>/dev/null)/libpq-fe.h" ] || missing+=(libpq-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${1:-}" = test ]; then
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    # The email tests run a real IMAP server (Dovecot) and a real SMTP server (aiosmtpd).
    [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
    /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
