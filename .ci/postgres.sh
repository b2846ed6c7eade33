#!/bin/sh
# PostgreSQL for the store conformance tests (src/store/conformance.rs): Debian's package, one
# cluster listening on 127.0.0.1 only, and a role `sfx` (password `sfx`, CREATEDB: each test
# makes and drops its own database). Idempotent; run as root on Debian 12.
# Prints nothing else on success; the caller exports SFX_TEST_POSTGRES_URL.
set -eu

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # The package's own service start is refused where policy-rc.d says so; we start it below.
    apt-get install -y postgresql
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$ver" main
fi
conf=/etc/postgresql/$ver/main
# Loopback only: the tests never talk to anything else.
sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 30); do
    su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 1
done
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname = 'sfx'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE sfx LOGIN CREATEDB PASSWORD 'sfx'\""
# Over TCP with the password, as sfx connects.
PGPASSWORD=sfx psql -h 127.0.0.1 -U sfx -d postgres -qAtc 'SELECT 1' >/dev/null
