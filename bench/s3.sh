#!/usr/bin/env bash
# bench/s3.sh [--size-mib 1024] [--runs 3] [--no-build]
#
# The scale-out path against local disk, in the same run, on this machine:
#  1. one file (--size-mib) uploaded with the vendor's curl command (multipart POST /+upload)
#     a. to sfx on local disk (SQLite, data_dir/files)
#     b. to sfx on PostgreSQL + S3 (moto, the test S3 server; 16 MiB parts)
#     c. the reference: the same file PUT straight into moto with curl (the S3 server's ceiling:
#        sfx cannot be faster than the store it writes to)
#  2. 50 concurrent 20 MiB uploads: all to one local-disk sfx, then split 25/25 across two sfx
#     instances sharing PostgreSQL + S3; every upload is checked (status, SHA-256 in the listing).
# Needs PostgreSQL and moto as the tests use them: sh .ci/postgres.sh && sh .ci/s3.sh
# (SFX_TEST_POSTGRES_URL, SFX_TEST_S3_ENDPOINT; defaults below). Only ever talks to 127.0.0.1.
set -euo pipefail

SIZE_MIB=1024; RUNS=3; BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
PG=${SFX_TEST_POSTGRES_URL:-postgres://sfx:sfx@127.0.0.1:5432/postgres}
S3=${SFX_TEST_S3_ENDPOINT:-http://127.0.0.1:5000}
[[ $S3 == http://127.0.0.1:* ]] || { echo "S3 endpoint must be on 127.0.0.1: $S3" >&2; exit 2; }
[[ $PG == *@127.0.0.1:* ]] || { echo "PostgreSQL must be on 127.0.0.1: $PG" >&2; exit 2; }
for tool in cargo curl openssl awk psql; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
curl -fsS -o /dev/null "$S3/sfx-test" || { echo "no bucket sfx-test at $S3 (sh .ci/s3.sh)" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/sfx
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=""; DB="sfx_bench_$$"
cleanup() {
  local p
  # The servers were started in $(…) subshells: their pids are in files.
  for p in $(cat "$WORK"/*.pid 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  psql -q "$PG" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  echo "building: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sfx-s3-bench.XXXXXX")
psql -q "$PG" -c "CREATE DATABASE $DB" >/dev/null
DB_URL="${PG%/*}/$DB"

# config NAME [s3]: a config for instance NAME, local or on PostgreSQL + S3.
config() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  {
    printf 'listen = "127.0.0.1:0"\ndata_dir = "%s/data"\nmin_free_space = "0"\n' "$dir"
    printf 'max_uploads_per_client = 200\nmax_concurrent_uploads = 200\n'
    printf '[[secrets]]\nlabel = "customers"\nsecret = "support"\npermissions = ["create"]\n'
    printf '[[secrets]]\nlabel = "ops"\nsecret = "bench-admin"\npermissions = ["admin"]\n'
    [ "${2:-}" = s3 ] && printf '[metadata]\nurl = "%s"\n[storage]\nkind = "s3"\nbucket = "sfx-test"\nendpoint = "%s"\nprefix = "bench-%s/"\naccess_key_id = "test"\nsecret_access_key = "test"\n' "$DB_URL" "$S3" "$$"
  } > "$dir/sfx.toml"
  echo "$dir/sfx.toml"
}
# start CONFIG: runs sfx, prints its address (waits for it).
start() {
  local out=$WORK/out.$RANDOM i addr=""
  RUST_LOG=sfx=warn "$BIN" serve --config "$1" > "$out" 2> "$out.err" &
  echo $! > "$out.pid"
  for ((i = 0; i < 150; i++)); do
    addr=$(sed -n 's|^listening on http://\([^ /]*\).*$|\1|p' "$out" | head -n1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [[ $addr == 127.0.0.1:* ]] || { echo "sfx did not start:" >&2; cat "$out.err" >&2; exit 1; }
  echo "$addr"
}
# upload ADDR FILE: prints seconds; fails unless 302.
upload() {
  local t0 t1 code
  t0=$(now_ns)
  code=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$2;type=application/octet-stream" "http://user:support@$1/+upload" -X POST)
  t1=$(now_ns)
  [ "$code" = 302 ] || { echo "upload to $1 answered $code" >&2; exit 1; }
  secs "$t0" "$t1"
}

FILE=$WORK/file.bin
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
BYTES=$((SIZE_MIB << 20))
LOCAL=$(start "$(config local)")
CLUSTER=$(start "$(config s3a s3)")
declare -a T_LOCAL T_S3 T_REF
for ((r = 0; r < RUNS; r++)); do
  T_LOCAL+=("$(upload "$LOCAL" "$FILE")")
  T_S3+=("$(upload "$CLUSTER" "$FILE")")
  t0=$(now_ns)
  curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user test:test \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$FILE" "$S3/sfx-test/bench-ref-$$"
  T_REF+=("$(secs "$t0" "$(now_ns)")")
done
curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user test:test -X DELETE "$S3/sfx-test/bench-ref-$$" || true
med() { printf '%s\n' "$@" | stats | awk '{print $2}'; }
ml=$(med "${T_LOCAL[@]}"); ms=$(med "${T_S3[@]}"); mr=$(med "${T_REF[@]}")
echo "== one ${SIZE_MIB} MiB upload (curl -F, medians of $RUNS)"
printf '%-44s %8s s %6s MB/s\n' "sfx, local disk (SQLite)" "$ml" "$(mbps $BYTES "$ml")"
printf '%-44s %8s s %6s MB/s\n' "sfx, PostgreSQL + S3 (moto, 16 MiB parts)" "$ms" "$(mbps $BYTES "$ms")"
printf '%-44s %8s s %6s MB/s\n' "reference: curl -T straight into moto" "$mr" "$(mbps $BYTES "$mr")"
awk -v l="$ml" -v s="$ms" -v r="$mr" 'BEGIN{printf "S3 / local: %.2f   S3 / the store'"'"'s own ceiling: %.2f\n", l/s, r/s}'

# ---- 50 concurrent 20 MiB uploads ----
SMALL=$WORK/small.bin
head -c $((20 << 20)) /dev/urandom > "$SMALL"
SHA=$(openssl dgst -sha256 -r "$SMALL" | awk '{print $1}')
CLUSTER2=$(start "$(config s3b s3)")
# burst ADDR...: 50 uploads round-robin over the addresses; prints wall seconds.
burst() {
  local addrs=("$@") t0 i fails=0
  t0=$(now_ns)
  for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null -w '%{http_code}\n' -F "file=@$SMALL;type=application/octet-stream" \
      "http://user:support@${addrs[i % ${#addrs[@]}]}/+upload" -X POST > "$WORK/code.$i" &
  done
  wait # (in the $(…) subshell: only its curls)
  secs "$t0" "$(now_ns)"
  for ((i = 0; i < 50; i++)); do [ "$(cat "$WORK/code.$i")" = 302 ] || fails=$((fails + 1)); done
  [ "$fails" = 0 ] || echo "$fails of 50 failed" >&2
}
intact() { curl -s -u user:bench-admin "http://$1/apis/rest/items" | { grep -o "\"hash\": *\"$SHA\"" || true; } | wc -l; }
before_local=$(intact "$LOCAL"); before_cluster=$(intact "$CLUSTER")
wl=$(burst "$LOCAL"); nl=$(( $(intact "$LOCAL") - before_local ))
wc2=$(burst "$CLUSTER" "$CLUSTER2"); nc=$(( $(intact "$CLUSTER2") - before_cluster ))
echo "== 50 concurrent 20 MiB uploads"
printf '%-44s %8s s  %s/50 intact\n' "one sfx, local disk" "$wl" "$nl"
printf '%-44s %8s s  %s/50 intact\n' "two sfx, PostgreSQL + S3, 25 each" "$wc2" "$nc"
