#!/usr/bin/env bash
# bench/upload.sh [--size-mib 1024] [--runs 3] [--quiet-wait 20] [--dir /tmp] [--no-build]
#
# Uploads one random file with curl (the vendor command: multipart POST /+upload, Basic
# user:support) over 127.0.0.1 to a release build of sfx, and compares it, run by run, with two
# physical references on the same file:
#   openssl dgst -sha256 FILE                       (hashing speed; sfx hashes every byte)
#   dd if=FILE of=OUT bs=1M conv=fsync              (disk write + fsync; sfx fsyncs every upload)
# OUT, the sfx data dir and the source file share one temp dir (same filesystem).
# Reports best and median of --runs, ratio = slower reference time / sfx time (target >= 0.8),
# and sfx's peak RSS during the upload (VmHWM, reset via /proc/PID/clear_refs; target < 64 MiB).
# Each stored file is checked: sha256 of DATA/files/<name> (name from the 302 Location) must
# equal the source's. Everything started or created is removed on exit.
#   --size-mib N    file size in MiB (default 1024)
#   --runs N        timed runs of each measurement (default 3)
#   --quiet-wait S  before each timed step, wait up to S s for the machine to be < 15% busy
#   --dir D         where to make the temp dir (default $TMPDIR or /tmp)
#   --no-build      use the existing target/release/sfx (default: cargo build --release)
set -euo pipefail

SIZE_MIB=1024; RUNS=3; QUIET=20; BASE=${TMPDIR:-/tmp}; BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --quiet-wait) QUIET=$2; shift 2 ;;
    --dir) BASE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || { echo "--size-mib must be a positive integer" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive integer" >&2; exit 2; }
[[ $QUIET =~ ^[0-9]+$ ]] || { echo "--quiet-wait must be a whole number of seconds" >&2; exit 2; }
for tool in cargo curl openssl dd awk sha256sum; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/sfx

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ---- cleanup: only what this script started / created ----
WORK=""
cleanup() {
  sfx_stop
  [ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----
sys_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
busy_pct() {
  local a b; a=$(sys_busy); sleep 1; b=$(sys_busy)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", (b-a)/hz/n*100}'
}
# wait_quiet: until the machine is < 15% busy (1 s samples), at most $QUIET s; prints last busy %.
wait_quiet() {
  local t=0 b
  while :; do b=$(busy_pct); { [ "$b" -lt 15 ] || [ "$t" -ge "$QUIET" ]; } && break; t=$((t + 1)); done
  echo "$b"
}
proc_kb() { awk -v f="$2:" '$1==f{print $2}' "/proc/$1/status"; }
proc_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13)/hz}'; }
sha_of() { openssl dgst -sha256 -r "$1" | awk '{print $1}'; }

# ---- build ----
if [ "$BUILD" = 1 ]; then
  echo "building: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

# ---- temp dir: source file, sfx data dir, dd output (one filesystem) ----
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/sfx-upload-bench.XXXXXX")
DATA=$WORK/data; SRC=$WORK/src.bin; DD_OUT=$WORK/dd.out; CFG=$WORK/sfx.toml
mkdir -p "$DATA"
BYTES=$((SIZE_MIB * 1048576))
free_kb=$(df -Pk "$WORK" | awk 'NR==2{print $4}')
[ "$free_kb" -gt $((BYTES / 1024 * 3 + 1048576)) ] \
  || { echo "not enough free space in $WORK for a ${SIZE_MIB} MiB run (needs ~3x)" >&2; exit 1; }

echo "creating ${SIZE_MIB} MiB random file" >&2
head -c "$BYTES" /dev/urandom > "$SRC"
SRC_SHA=$(sha_of "$SRC")   # also pulls the file into the page cache
cat "$SRC" > /dev/null

bench_config "$CFG" "$DATA"

# ---- start sfx; its address comes from `listening on http://ADDR` on stdout ----
sfx_start "$CFG" "${RUST_LOG:-sfx=warn}"
curl -fsS --max-time 5 "http://$ADDR/healthz" > /dev/null || { echo "sfx /healthz failed" >&2; exit 1; }
IDLE_KB=$(proc_kb "$SFX_PID" VmRSS)

echo "sfx $("$BIN" --version 2>/dev/null | awk '{print $2}') pid $SFX_PID on $ADDR; data $DATA" >&2
echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores; fs: $(df -PT "$WORK" | awk 'NR==2{print $2}')" >&2

# ---- timed runs (interleaved: sfx, openssl, dd in each round) ----
T_SFX=(); T_SSL=(); T_DD=(); HWM=(); CPU=(); BUSY=()
for ((r = 1; r <= RUNS; r++)); do
  # sfx upload
  sync
  pb=$(wait_quiet)
  echo 5 > "/proc/$SFX_PID/clear_refs"
  c0=$(proc_cpu "$SFX_PID")
  t0=$(now_ns)
  code=$(curl -sS --max-time 900 -u user:support \
    -F "file=@$SRC;type=application/octet-stream" \
    -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "http://$ADDR/+upload") || code="curl-failed"
  t1=$(now_ns)
  c1=$(proc_cpu "$SFX_PID")
  hwm=$(proc_kb "$SFX_PID" VmHWM)
  [ "$code" = 302 ] || { echo "run $r: upload answered HTTP $code" >&2; cat "$WORK/body" >&2 || true; exit 1; }
  name=$(awk 'tolower($1)=="location:"{print $2}' "$WORK/headers" | tr -d '\r' | sed 's|^/||; s|#.*$||')
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || { echo "run $r: bad Location: $name" >&2; exit 1; }
  stored=$DATA/files/$name
  [ -f "$stored" ] || { echo "run $r: stored file $stored missing" >&2; exit 1; }
  got=$(sha_of "$stored")
  [ "$got" = "$SRC_SHA" ] || { echo "run $r: SHA-256 MISMATCH: stored $got, source $SRC_SHA" >&2; exit 1; }
  [ "$(stat -c %s "$stored")" = "$BYTES" ] || { echo "run $r: stored size differs" >&2; exit 1; }
  rm -f "$stored"   # keep disk use bounded; the item's metadata stays, unused
  t_sfx=$(secs "$t0" "$t1")
  T_SFX+=("$t_sfx"); HWM+=("$hwm"); CPU+=("$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')"); BUSY+=("$pb")

  # openssl dgst -sha256
  pb=$(wait_quiet)
  t0=$(now_ns); openssl dgst -sha256 "$SRC" > /dev/null; t1=$(now_ns)
  t_ssl=$(secs "$t0" "$t1"); T_SSL+=("$t_ssl")

  # dd conv=fsync
  sync
  pb2=$(wait_quiet)
  t0=$(now_ns); dd if="$SRC" of="$DD_OUT" bs=1M conv=fsync status=none; t1=$(now_ns)
  t_dd=$(secs "$t0" "$t1"); T_DD+=("$t_dd")
  rm -f "$DD_OUT"

  printf 'run %d: sfx %6.3f s (%4s MB/s, peak RSS %5.1f MiB, sfx CPU %s s, sha256 ok, pre-busy %s%%)  openssl %6.3f s  dd %6.3f s (pre-busy openssl %s%%, dd %s%%)\n' \
    "$r" "$t_sfx" "$(mbps "$BYTES" "$t_sfx")" "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" \
    "${CPU[-1]}" "${BUSY[-1]}" "$t_ssl" "$t_dd" "$pb" "$pb2"
done

read -r sfx_best sfx_med sfx_worst <<<"$(printf '%s\n' "${T_SFX[@]}" | stats)"
read -r ssl_best ssl_med _ <<<"$(printf '%s\n' "${T_SSL[@]}" | stats)"
read -r dd_best dd_med _ <<<"$(printf '%s\n' "${T_DD[@]}" | stats)"
peak_kb=$(printf '%s\n' "${HWM[@]}" | sort -n | tail -n1)
peak_mib=$(awk -v k="$peak_kb" 'BEGIN{printf "%.1f", k/1024}')
# slower reference per statistic; ratio = slower reference time / sfx time
slow_best=$(awk -v a="$ssl_best" -v b="$dd_best" 'BEGIN{print (a>b)?a:b}')
slow_med=$(awk -v a="$ssl_med" -v b="$dd_med" 'BEGIN{print (a>b)?a:b}')
slow_name=$(awk -v a="$ssl_med" -v b="$dd_med" 'BEGIN{print (a>b)?"openssl dgst -sha256":"dd conv=fsync"}')
ratio_best=$(awk -v r="$slow_best" -v s="$sfx_best" 'BEGIN{printf "%.2f", r/s}')
ratio_med=$(awk -v r="$slow_med" -v s="$sfx_med" 'BEGIN{printf "%.2f", r/s}')
ok_ratio=$(awk -v x="$ratio_med" 'BEGIN{print (x>=0.8)?"ok":"MISSED"}')
ok_rss=$(awk -v x="$peak_kb" 'BEGIN{print (x<65536)?"ok":"MISSED"}')

cat <<EOF

== sfx upload benchmark: ${SIZE_MIB} MiB, ${RUNS} runs, curl -F over 127.0.0.1 ($(nproc) cores) ==
sfx: ${sfx_med} s median ($(mbps "$BYTES" "$sfx_med") MB/s), best ${sfx_best} s ($(mbps "$BYTES" "$sfx_best") MB/s), worst ${sfx_worst} s
openssl dgst -sha256: ${ssl_med} s median ($(mbps "$BYTES" "$ssl_med") MB/s), best ${ssl_best} s
dd conv=fsync: ${dd_med} s median ($(mbps "$BYTES" "$dd_med") MB/s), best ${dd_best} s
slower reference (median): ${slow_name}
ratio (slower ref / sfx): ${ratio_med} median, ${ratio_best} best (target >= 0.8: ${ok_ratio})
sfx peak RSS: ${peak_mib} MiB (target < 64 MiB: ${ok_rss}); idle RSS $(awk -v k="$IDLE_KB" 'BEGIN{printf "%.1f", k/1024}') MiB
sfx CPU per upload: $(printf '%s\n' "${CPU[@]}" | stats | awk '{print $2}') s median
sha256 of every stored file: ok (${SRC_SHA})
EOF
