#!/usr/bin/env bash
# bench/slow-uploads.sh [--uploads 1000] [--seconds 20] [--fast-mib 256] [--no-build]
#
# What a slow upload costs: N uploads that trickle (a few bytes a second each, one connection
# each, from N loopback addresses in distinct /24s so no per-address or per-network cap
# applies) run against a release build of sfx for --seconds, while one fast curl upload of
# --fast-mib MiB goes alongside. Prints sfx's RSS with the trickles running (and per trickle),
# its thread count, and the fast upload's time against the same upload alone in the same run
# (ratio = solo time / time under load; issue 11's target is >= 0.5, RSS <= 128 MiB).
# Every trickle is checked to be in progress (the server holds N upload slots) before timing.
set -euo pipefail

N=1000; SECS=20; FAST_MIB=256; BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --uploads) N=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --fast-mib) FAST_MIB=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/sfx
WORK=""; SFX_PID=""; LOAD_PID=""
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  if [ -n "$SFX_PID" ] && [ -d "/proc/$SFX_PID" ]; then
    kill -TERM "$SFX_PID" 2>/dev/null || true; sleep 1; kill -KILL "$SFX_PID" 2>/dev/null || true
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --quiet)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sfx-slow-bench.XXXXXX")
ulimit -n 65536 2>/dev/null || true
head -c $((FAST_MIB * 1048576)) /dev/urandom > "$WORK/fast.bin"
cat > "$WORK/sfx.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$WORK/data"
min_free_space = "0"
max_concurrent_uploads = $((N + 10))
upload_idle_timeout = "120s"
idle_timeout = "120s"

[[secrets]]
label = "customers"
secret = "support"
permissions = ["create"]
TOML
RUST_LOG=sfx=warn "$BIN" serve --config "$WORK/sfx.toml" > "$WORK/out" 2> "$WORK/err" &
SFX_PID=$!
for _ in $(seq 100); do ADDR=$(sed -n 's|^listening on http://||p' "$WORK/out"); [ -n "$ADDR" ] && break; sleep 0.1; done
[ -n "$ADDR" ] || { cat "$WORK/err"; exit 1; }
kb() { awk -v f="$1:" '$1==f{print $2}' "/proc/$SFX_PID/status"; }
fast() {
  local t0 t1
  t0=$(date +%s%N)
  curl -sS -o /dev/null -w '%{http_code}' -u user:support \
    -F "file=@$WORK/fast.bin;type=application/octet-stream" "http://$ADDR/+upload" > "$WORK/code"
  t1=$(date +%s%N)
  [ "$(cat "$WORK/code")" = 302 ] || { echo "fast upload failed: $(cat "$WORK/code")" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}'
}
IDLE_KB=$(kb VmRSS)
SOLO=$(fast)
python3 - "$ADDR" "$N" "$SECS" > "$WORK/load.log" 2>&1 <<'PY' &
import asyncio, sys
host, port = sys.argv[1].rsplit(":", 1)
n, secs = int(sys.argv[2]), float(sys.argv[3])
B = "sfxBench"
head = ("POST /+upload HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpzdXBwb3J0\r\n"
        f"Content-Type: multipart/form-data; boundary={B}\r\nContent-Length: 100000000\r\n\r\n"
        f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n\r\n").encode()
async def one(i):
    src = f"127.{1 + i // 250 % 250}.{i % 250}.1"
    r, w = await asyncio.open_connection(host, int(port), local_addr=(src, 0))
    w.write(head); await w.drain()
    end = asyncio.get_running_loop().time() + secs + 30
    while asyncio.get_running_loop().time() < end:
        w.write(b"abc"); await w.drain(); await asyncio.sleep(1)
async def main():
    await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
asyncio.run(main())
PY
LOAD_PID=$!
# Wait until every trickle holds an upload (a temp file each).
for _ in $(seq 300); do
  held=$(ls "$WORK/data/tmp" 2>/dev/null | wc -l)
  [ "$held" -ge "$N" ] && break; sleep 0.2
done
echo 5 > "/proc/$SFX_PID/clear_refs"
sleep "$((SECS / 2))"
LOADED=$(fast)
sleep "$((SECS / 2))"
RSS_KB=$(kb VmRSS); HWM_KB=$(kb VmHWM); THREADS=$(kb Threads)
echo "trickling uploads in progress: $held of $N"
echo "sfx RSS idle $((IDLE_KB / 1024)) MiB; with the trickles $((RSS_KB / 1024)) MiB (peak $((HWM_KB / 1024)) MiB), $(( (RSS_KB - IDLE_KB) / (held > 0 ? held : 1) )) KiB per trickle; threads $THREADS"
awk -v s="$SOLO" -v l="$LOADED" -v m="$FAST_MIB" 'BEGIN{printf "fast %d MiB upload: solo %.3f s, alongside the trickles %.3f s; ratio solo/loaded %.2f (target >= 0.5)\n", m, s, l, s/l}'
awk -v r="$HWM_KB" 'BEGIN{printf "peak RSS %.0f MiB (target <= 128 MiB): %s\n", r/1024, (r/1024 <= 128) ? "ok" : "MISSED"}'
