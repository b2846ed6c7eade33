#!/bin/sh
# An S3 server for the tests: moto 5.2.5 in server mode (PyPI, in a venv of its own), on
# 127.0.0.1:5000, with the bucket `sfx-test`. moto enforces S3's rules that matter to sfx: the
# 5 MiB minimum of every part but the last, part numbers, ETags on completion. Idempotent: a
# moto already answering is kept. Then: export SFX_TEST_S3_ENDPOINT=http://127.0.0.1:5000
set -eu
venv="${SFX_TEST_MOTO_VENV:-/tmp/sfx-moto-venv}"
port="${SFX_TEST_S3_PORT:-5000}"
if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
if ! curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > /tmp/sfx-moto.log 2>&1 &
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { cat /tmp/sfx-moto.log >&2; exit 1; }
        sleep 0.2
    done
fi
# moto takes any credentials; an unsigned create is enough for the test bucket.
curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$port/sfx-test" || true
echo "moto listening on 127.0.0.1:$port with bucket sfx-test"
