# Shared by the bench scripts (sourced, not run): timing helpers, and starting/stopping the sfx
# under test. The caller sets BIN and WORK, and calls sfx_stop from its EXIT trap.

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN{printf "%.0f", b/t/1e6}'; }
# stats: numbers on stdin -> "best median worst"
stats() { sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", a[1], m, a[NR]}'; }

# bench_config FILE DATA_DIR [MORE_TOML]: the config of the sfx under test: 127.0.0.1, files up
# to 8 GiB, the vendor's upload-only secret `support`; MORE_TOML adds top-level keys.
bench_config() {
  cat > "$1" <<TOML
listen = "127.0.0.1:0"
data_dir = "$2"
max_file_size = "8GiB"
min_free_space = "1MiB"
${3:-}

[[secrets]]
label = "customers"
secret = "support"
permissions = ["create"]
TOML
}

SFX_PID=""; ADDR=""
# sfx_start CONFIG [RUST_LOG]: starts $BIN serve with its output in $WORK/sfx.{out,err} and
# waits for `listening on http://ADDR` (sets SFX_PID and ADDR); refuses anything but 127.0.0.1.
sfx_start() {
  local i
  RUST_LOG=${2:-sfx=warn} "$BIN" serve --config "$1" > "$WORK/sfx.out" 2> "$WORK/sfx.err" &
  SFX_PID=$!
  for ((i = 0; i < 150; i++)); do
    ADDR=$(sed -n 's|^listening on http://\([^ /]*\).*$|\1|p' "$WORK/sfx.out" | head -n1)
    [ -n "$ADDR" ] && break
    [ -d "/proc/$SFX_PID" ] || { echo "sfx exited at start-up:" >&2; cat "$WORK/sfx.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ADDR" ] || { echo "sfx did not print its address" >&2; cat "$WORK/sfx.err" >&2; exit 1; }
  [[ $ADDR == 127.0.0.1:* ]] || { echo "sfx listens on $ADDR, not 127.0.0.1: refusing" >&2; exit 1; }
}

# sfx_stop: SIGTERM, up to 10 s to finish, then SIGKILL.
sfx_stop() {
  local i
  if [ -n "$SFX_PID" ] && [ -d "/proc/$SFX_PID" ]; then
    kill -TERM "$SFX_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [ -d "/proc/$SFX_PID" ] || break; sleep 0.2; done
    [ -d "/proc/$SFX_PID" ] && kill -KILL "$SFX_PID" 2>/dev/null || true
    wait "$SFX_PID" 2>/dev/null || true
  fi
}
