#!/usr/bin/env bash
# bench/instructions.sh [--size-mib 64] [--no-build]
#
# Instructions per GiB of each upload path, counted by valgrind's callgrind (repeatable where
# timings on this VM are not): the release build of sfx under callgrind takes one upload by
# form, PUT and the agent's one-shot REST POST (base64), each in a server of its own, and a
# server that takes none gives the start-up and shut-down cost to subtract. Printed per GiB,
# in total and without SHA-256's compression function: valgrind does not offer the CPU's
# SHA extensions, so under it sha2 runs its portable code (~95% of all instructions), far
# from what it costs natively; the figure without it is the one to watch for regressions.
set -euo pipefail

SIZE_MIB=64; BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_annotate curl base64; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/sfx
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked -q)
WORK=$(mktemp -d); PID=""
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
BYTES=$((SIZE_MIB * 1048576))
head -c "$BYTES" /dev/urandom > "$WORK/src.bin"
base64 -w0 "$WORK/src.bin" > "$WORK/src.b64"

# Runs one server under callgrind, does upload $1 (or none), stops it; prints "total sha".
counted() {
  local data=$WORK/data.$1 out=$WORK/cg.$1 port="" i
  bench_config "$WORK/sfx.toml" "$data"
  RUST_LOG=sfx=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$BIN" serve --config "$WORK/sfx.toml" > "$WORK/stdout.$1" 2> "$WORK/vg.$1" &
  PID=$!
  for ((i = 0; i < 300; i++)); do
    port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$WORK/stdout.$1")
    [ -n "$port" ] && break
    sleep 0.2
  done
  [ -n "$port" ] || { cat "$WORK/vg.$1" >&2; exit 1; }
  local url=http://127.0.0.1:$port
  case $1 in
    none) ;;
    form) curl -sS -f -u user:support -F "file=@$WORK/src.bin;type=application/octet-stream" -o /dev/null "$url/+upload" ;;
    put) curl -sS -f -u user:support -T "$WORK/src.bin" -o /dev/null "$url/+upload/src.bin" ;;
    rest) curl -sS -f -u user:support -H 'Content-Type: application/octet-stream' \
      -H 'Content-Filename: _svc1_at_node1.tar.gz' -H "Content-Range: bytes 0-$((BYTES - 1))/$BYTES" \
      -H 'Expect:' -X POST -T "$WORK/src.b64" -o /dev/null "$url/apis/rest/items" ;;
  esac
  kill -TERM "$PID"; wait "$PID" || true; PID=""
  callgrind_annotate "$out" 2>/dev/null | awk '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /compress256/ { gsub(",", "", $1); sha += $1 }
    END { printf "%.0f %.0f\n", total, sha }'
}

read -r base_total base_sha <<<"$(counted none)"
echo "== instructions per GiB (callgrind, one ${SIZE_MIB} MiB upload each, start-up subtracted)"
printf '%-5s %14s %22s\n' path total "without SHA-256"
for p in form put rest; do
  read -r total sha <<<"$(counted "$p")"
  awk -v t="$total" -v s="$sha" -v bt="$base_total" -v bs="$base_sha" -v m="$SIZE_MIB" -v p="$p" \
    'BEGIN { k = 1024 / m; printf "%-5s %12.2f G %20.2f G\n", p, (t - bt) * k / 1e9, ((t - s) - (bt - bs)) * k / 1e9 }'
done
