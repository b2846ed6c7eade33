#!/usr/bin/env bash
# bench/protocols.sh [--size-mib 1024] [--chunk-mib 50] [--runs 3] [--dir /tmp] [--no-build]
#
# One random file uploaded to a release build of sfx over 127.0.0.1 with curl in three ways,
# interleaved in each round so that all see the same machine:
#   form  multipart POST /+upload (the vendor's command: curl -F)           -- the reference
#   put   PUT /+upload/<name> (curl -T)
#   tus   POST /+tus/ then one PATCH per chunk (dd | curl -T -, --chunk-mib each), as the
#         browser uploader and /+client.sh do
#   rest  the vendor agent's one-shot bepasty REST POST: the whole file base64-encoded (no line
#         breaks; 4/3 of the file's size on the wire), Content-Range bytes 0-N/N (encoded once,
#         before the runs; curl sends it from a file)
# Prints each time, the median and best of --runs, the ratio form time / protocol time
# (1.00 = as fast as the form post; tus should lose little) and sfx's peak RSS during each
# protocol's uploads (VmHWM, reset before each upload). Each stored file's SHA-256 is
# checked against the source (the server's Sfx-Sha256 header or receipt, and the stored bytes).
# Everything started or created is removed on exit.
set -euo pipefail

SIZE_MIB=1024; CHUNK_MIB=50; RUNS=3; BASE=${TMPDIR:-/tmp}; BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --chunk-mib) CHUNK_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --dir) BASE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$SIZE_MIB" "$CHUNK_MIB" "$RUNS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "sizes and --runs must be positive integers" >&2; exit 2; }
done
for tool in cargo curl dd awk sha256sum; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/sfx
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
WORK=""
cleanup() {
  sfx_stop
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

header() { awk -v h="$1:" 'tolower($1)==h{print $2}' "$2" | tr -d '\r' | tail -n1; }

if [ "$BUILD" = 1 ]; then
  echo "building: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/sfx-protocols-bench.XXXXXX")
DATA=$WORK/data; SRC=$WORK/src.bin; CFG=$WORK/sfx.toml
mkdir -p "$DATA"
BYTES=$((SIZE_MIB * 1048576)); CHUNK=$((CHUNK_MIB * 1048576))
free_kb=$(df -Pk "$WORK" | awk 'NR==2{print $4}')
[ "$free_kb" -gt $((BYTES / 1024 * 5 + 1048576)) ] \
  || { echo "not enough free space in $WORK (needs ~5x ${SIZE_MIB} MiB)" >&2; exit 1; }
echo "creating ${SIZE_MIB} MiB random file" >&2
head -c "$BYTES" /dev/urandom > "$SRC"
SRC_SHA=$(sha256sum "$SRC" | awk '{print $1}')
base64 -w0 "$SRC" > "$SRC.b64"

bench_config "$CFG" "$DATA" 'quota_bytes = "1TiB"'
# info: one line per request with its server-side time (ms=), summed for the tus PATCHes.
sfx_start "$CFG" "${RUST_LOG:-sfx=info}"
URL=http://$ADDR
AUTH=(-u user:support)

# Each upload function prints the stored item's name.
up_form() {
  curl -sS -f "${AUTH[@]}" -F "file=@$SRC;type=application/octet-stream" -D "$WORK/h" -o /dev/null "$URL/+upload"
  header location "$WORK/h" | sed 's|^/||; s|#.*$||'
}
up_put() {
  curl -sS -f "${AUTH[@]}" -T "$SRC" -D "$WORK/h" -o /dev/null "$URL/+upload/src.bin"
  [ "$(header sfx-sha256 "$WORK/h")" = "$SRC_SHA" ] || { echo "PUT: server SHA-256 differs" >&2; exit 1; }
  header sfx-item "$WORK/h"
}
up_tus() {
  local loc off=0 n
  curl -sS -f "${AUTH[@]}" -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $BYTES" \
    -H "Upload-Metadata: filename $(printf src.bin | base64)" -D "$WORK/h" -o /dev/null "$URL/+tus/"
  loc=$(header location "$WORK/h")
  while [ "$off" -lt "$BYTES" ]; do
    n=$((BYTES - off)); [ "$n" -gt "$CHUNK" ] && n=$CHUNK
    # Whole-MiB chunks: dd alone cuts them (the last one ends at EOF); no extra pipe stage.
    dd if="$SRC" bs=1M skip=$((off / 1048576)) count="$CHUNK_MIB" iflag=fullblock status=none \
      | curl -sS -f "${AUTH[@]}" -X PATCH -T - -H 'Transfer-Encoding:' -H "Content-Length: $n" \
          -H 'Tus-Resumable: 1.0.0' -H "Upload-Offset: $off" \
          -H 'Content-Type: application/offset+octet-stream' -D "$WORK/h" -o /dev/null "$URL$loc"
    off=$(header upload-offset "$WORK/h")
  done
  [ "$(header sfx-sha256 "$WORK/h")" = "$SRC_SHA" ] || { echo "tus: server SHA-256 differs" >&2; exit 1; }
  header sfx-item "$WORK/h"
}
up_rest() {
  curl -sS -f "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
    -H 'Content-Filename: _svc1_at_node1.tar.gz' -H "Content-Range: bytes 0-$((BYTES - 1))/$BYTES" \
    -H 'Maxlife-Unit: DAYS' -H 'Maxlife-Value: 7' -H 'Expect:' -X POST -T "$SRC.b64" \
    -D "$WORK/h" -o /dev/null "$URL/apis/rest/items"
  header content-location "$WORK/h" | sed 's|.*/||'
}
[ $((CHUNK % 1048576)) = 0 ] || { echo "--chunk-mib must be whole MiB" >&2; exit 2; }

# Server-side milliseconds of the tus PATCHes logged since line $1 of sfx's log.
patch_ms() { tail -n +"$1" "$WORK/sfx.err" | grep 'method=PATCH' | sed -n 's/.* ms=\([0-9]*\).*/\1/p' | awk '{s+=$1} END{printf "%.3f", s/1000}'; }
declare -A T HWM
SRV_TUS=""
for ((r = 1; r <= RUNS; r++)); do
  line="run $r:"
  for p in form put tus rest; do
    sync
    echo 5 > "/proc/$SFX_PID/clear_refs"
    mark=$(($(wc -l < "$WORK/sfx.err") + 1))
    t0=$(now_ns); name=$("up_$p"); t1=$(now_ns)
    [ "$p" = tus ] && SRV_TUS="$SRV_TUS $(patch_ms "$mark")"
    hwm=$(awk '$1=="VmHWM:"{print $2}' "/proc/$SFX_PID/status")
    [ "${HWM[$p]:-0}" -ge "$hwm" ] || HWM[$p]=$hwm
    stored=$DATA/files/$name
    [ -f "$stored" ] || { echo "$p: stored file for '$name' missing" >&2; exit 1; }
    [ "$(sha256sum "$stored" | awk '{print $1}')" = "$SRC_SHA" ] || { echo "$p: stored bytes differ" >&2; exit 1; }
    rm -f "$stored"
    t=$(secs "$t0" "$t1"); T[$p]="${T[$p]:-} $t"
    line="$line $p $t s ($(mbps "$BYTES" "$t") MB/s)"
  done
  echo "$line"
done

read -r form_best form_med _ <<<"$(printf '%s\n' ${T[form]} | stats)"
echo
echo "== ${SIZE_MIB} MiB over 127.0.0.1, ${RUNS} runs, tus chunks of ${CHUNK_MIB} MiB ($(nproc) cores) =="
for p in form put tus rest; do
  read -r best med _ <<<"$(printf '%s\n' ${T[$p]} | stats)"
  ratio=$(awk -v f="$form_med" -v m="$med" 'BEGIN{printf "%.2f", f/m}')
  printf '%-5s median %7.3f s (%4s MB/s), best %7.3f s; form/%s = %s; peak RSS %.1f MiB\n' \
    "$p" "$med" "$(mbps "$BYTES" "$med")" "$best" "$p" "$ratio" "$(awk -v k="${HWM[$p]}" 'BEGIN{print k/1024}')"
done
read -r _ srv_med _ <<<"$(printf '%s\n' $SRV_TUS | stats)"
echo "tus PATCHes as the server timed them (sum of their request times): ${srv_med} s median;"
echo "  the rest of tus's time is the client's: a dd | curl pair per chunk, on the same cores"
echo "sha256 of every stored file: ok ($SRC_SHA)"
