#!/bin/sh
# Installs what tests/rest_clients.rs needs: a Python venv with the real bepasty-client-cli 0.3.0
# (PyPI), python-magic 0.4.6 (the version whose result is bytes, which 0.3.0 needs for its type
# guess) and requests (for the OpenSVC agent replay); and tuspy 1.1.0, the tus project's Python
# client, for tests/tus_clients.rs; prometheus_client 0.26.0, the Prometheus project's Python
# client, whose text parsers read the scrapes of tests/metrics.rs; and (in a venv of its own, below)
# bepasty 1.2.2 for tests/import_bepasty.rs. Also libmagic1 and python3-venv from
# Debian when they are missing. Idempotent; run as root on a fresh Debian 12 machine.
# The venv path is $SFX_TEST_VENV (default /tmp/sfx-test-venv), the same variable the tests read.
# A second venv beside it, $SFX_TEST_VENV-bepasty, holds the bepasty 1.2.2 server itself, whose own
# upload code writes the storage directory tests/import_bepasty.rs imports: it needs a python-magic
# newer than the 0.4.6 bepasty-client-cli needs, so the two cannot share a venv.
# Then: SFX_REQUIRE_PYTHON_CLIENTS=1 cargo test --test rest_clients
set -eu

venv="${SFX_TEST_VENV:-/tmp/sfx-test-venv}"

# Any python3 >= 3.8 with a working venv module will do; prefer the one on PATH (pyenv here),
# then Debian's.
python=""
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        python="$candidate"
        break
    fi
done

need_apt=""
[ -n "$python" ] || need_apt="python3 python3-venv"
# libmagic itself (python-magic loads it with ctypes at import time).
if ! ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1'; then
    need_apt="$need_apt libmagic1"
fi
if [ -n "$need_apt" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y $need_apt
    [ -n "$python" ] || python=/usr/bin/python3
fi

for v in "$venv" "$venv-bepasty"; do
    if [ ! -x "$v/bin/python" ] || ! "$v/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$v"
        "$python" -m venv "$v"
    fi
done
"$venv/bin/python" -m pip install --quiet 'bepasty-client-cli==0.3.0' 'python-magic==0.4.6' requests \
    'tuspy==1.1.0' 'prometheus_client==0.26.0'
"$venv-bepasty/bin/python" -m pip install --quiet 'bepasty==1.2.2'

# Fail here, not in the tests, if the pieces do not load.
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import magic, requests
from bepasty_cli.cli import main  # noqa: F401
from tusclient import client  # noqa: F401
from prometheus_client.parser import text_string_to_metric_families  # noqa: F401
print("bepasty-client-cli", md.version("bepasty-client-cli"),
      "python-magic", md.version("python-magic"),
      "requests", requests.__version__, "tuspy", md.version("tuspy"))
assert md.version("bepasty-client-cli") == "0.3.0"
assert md.version("tuspy") == "1.1.0"
assert md.version("prometheus_client") == "0.26.0"
assert isinstance(magic.from_buffer(b"hello world\n", mime=True), bytes)
EOF
"$venv-bepasty/bin/python" - <<'EOF'
import importlib.metadata as md
from bepasty.app import create_app  # noqa: F401
print("bepasty", md.version("bepasty"))
assert md.version("bepasty") == "1.2.2"
EOF
