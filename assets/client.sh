#!/bin/sh
# sfx zero-install upload client: resumable uploads over tus 1.0.0 with curl only.
#
#   curl -fsS @SFX_PUBLIC_URL@/+client.sh | sh -s -- [options] FILE...
#   curl -fsSO @SFX_PUBLIC_URL@/+client.sh && sh client.sh [options] FILE...
#
# Options:
#   -p PASSWORD   upload password (default: support; or set SFX_PASSWORD)
#   -t TOKEN      the token of an upload link (https://HOST/u/TOKEN) instead of a password
#   -r REFERENCE  your reference, e.g. a ticket number
#   -c COMMENT    a comment shown with the upload
#   -s SIZE       chunk size, with K, M or G suffix (default: the server's)
#   -k            do not verify the server's TLS certificate (insecure)
#   -h            this help
#
# Running the same command again after an interruption continues where it stopped (the upload's
# address is kept in ${XDG_CACHE_HOME:-$HOME/.cache}/sfx-client/ until the upload is complete).
# Needs: curl, sha256sum or shasum, and POSIX dd, od, awk. Proxies: curl's https_proxy.
# Environment: SFX_URL (another server), SFX_CURL_OPTS (extra curl options), SFX_RETRIES.
#
# The whole script is one function called on its last line, so a download cut short runs nothing.

sfx_main() {
    set -u
    umask 077
    SFX_DEFAULT_URL='@SFX_PUBLIC_URL@'
    SFX_DEFAULT_CHUNK='@SFX_CHUNK_SIZE@'
    base=${SFX_URL:-$SFX_DEFAULT_URL}
    base=${base%/}
    chunk=$SFX_DEFAULT_CHUNK
    password=${SFX_PASSWORD:-support}
    reference=""
    comment=""
    insecure=""
    max_tries=${SFX_RETRIES:-8}
    # The dd block size: chunks are read in blocks of this size, unaligned ends byte by byte.
    blk=65536

    OPTIND=1
    while getopts 'p:t:r:c:s:kh' opt; do
        case $opt in
        p) password=$OPTARG ;;
        # The server takes a link's token wherever it takes a password.
        t) password=$OPTARG ;;
        r) reference=$OPTARG ;;
        c) comment=$OPTARG ;;
        s) chunk=$(parse_size "$OPTARG") || die "-s $OPTARG: expected a size like 8M, 512K or 1G" ;;
        k) insecure=--insecure ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
        esac
    done
    shift $((OPTIND - 1))
    [ $# -gt 0 ] || { usage >&2; exit 2; }

    case $base in
    http://* | https://*) ;;
    *) die "server URL '$base' must start with http:// or https://" ;;
    esac
    # scheme://host[:port], to resolve the absolute paths the server answers with.
    origin=$(printf '%s\n' "$base" | sed 's#^\(https*://[^/]*\).*#\1#')

    command -v curl >/dev/null 2>&1 || die "curl is needed"
    if command -v sha256sum >/dev/null 2>&1; then
        hasher=sha256sum
    elif command -v shasum >/dev/null 2>&1; then
        hasher=shasum
    else
        die "sha256sum or shasum is needed"
    fi
    case $password in
    *"
"*) die "the password cannot contain a newline" ;;
    esac

    cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sfx-client
    mkdir -p "$cache" || die "cannot create $cache"

    # Credentials go to curl in a private config file, never on a command line others can see.
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfx-client.XXXXXX") || die "cannot create a temporary directory"
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    cfg=$tmp/curl.conf
    esc=$(printf '%s' "$password" | sed 's/\\/\\\\/g; s/"/\\"/g')
    printf 'user = "sfx-client:%s"\n' "$esc" >"$cfg"

    failed=0
    for file in "$@"; do
        upload_file "$file" || failed=1
    done
    return $failed
}

usage() {
    cat <<EOF
usage: sh client.sh [-p PASSWORD | -t TOKEN] [-r REFERENCE] [-c COMMENT] [-s SIZE] [-k] FILE...
       curl -fsS $SFX_DEFAULT_URL/+client.sh | sh -s -- [options] FILE...

Uploads each FILE to $base, resumably: run the same command again after an
interruption and it continues where it stopped.

  -p PASSWORD   upload password (default: support; or set SFX_PASSWORD)
  -t TOKEN      the token of an upload link (https://HOST/u/TOKEN) instead of a password
  -r REFERENCE  your reference, e.g. a ticket number
  -c COMMENT    a comment shown with the upload
  -s SIZE       chunk size, with a K, M or G suffix (default: $SFX_DEFAULT_CHUNK bytes)
  -k            do not verify the server's TLS certificate (insecure)

Environment: SFX_URL (another server), SFX_CURL_OPTS (extra curl options),
SFX_RETRIES (tries per step, default 8).
EOF
}

say() { printf 'sfx: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# parse_size 8M -> 8388608
parse_size() {
    printf '%s\n' "$1" | awk '
        /^[0-9]+[KkMmGg]?([iI]?[bB])?$/ {
            n = $0 + 0; u = toupper(substr($0, length(n "") + 1, 1))
            if (u == "K") n *= 1024; else if (u == "M") n *= 1048576; else if (u == "G") n *= 1073741824
            if (n >= 1) { printf "%d\n", n; ok = 1 }
        }
        END { exit ok ? 0 : 1 }'
}

# Base64 of the bytes given as decimal numbers on stdin (od -An -tu1 output), without newlines.
b64_of_decimal_bytes() {
    awk 'BEGIN { t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"; n = 0 }
    { for (i = 1; i <= NF; i++) b[n++] = $i + 0 }
    function c(v) { return substr(t, v % 64 + 1, 1) }
    END {
        for (i = 0; i + 2 < n; i += 3) {
            v = b[i] * 65536 + b[i + 1] * 256 + b[i + 2]
            printf "%s%s%s%s", c(int(v / 262144)), c(int(v / 4096)), c(int(v / 64)), c(v)
        }
        if (n - i == 1) { v = b[i] * 65536; printf "%s%s==", c(int(v / 262144)), c(int(v / 4096)) }
        if (n - i == 2) {
            v = b[i] * 65536 + b[i + 1] * 256
            printf "%s%s%s=", c(int(v / 262144)), c(int(v / 4096)), c(int(v / 64))
        }
    }'
}

b64_string() { printf '%s' "$1" | od -An -v -tu1 | b64_of_decimal_bytes; }

# Base64 of the binary digest given in hex.
b64_hex() {
    printf '%s\n' "$1" | awk '{
        h = "0123456789abcdef"; s = tolower($0)
        for (i = 1; i < length(s); i += 2)
            print (index(h, substr(s, i, 1)) - 1) * 16 + index(h, substr(s, i + 1, 1)) - 1
    }' | b64_of_decimal_bytes
}

sha256_stdin() {
    if [ "$hasher" = sha256sum ]; then sha256sum; else shasum -a 256; fi | awk '{ print $1 }'
}

file_mtime() {
    stat -c %Y "$1" 2>/dev/null || stat -f %m "$1" 2>/dev/null || echo 0
}

# read_range FILE OFFSET LENGTH: those bytes on stdout, streamed; whole blocks where aligned.
read_range() {
    rr_f=$1 rr_off=$2 rr_len=$3
    rr_head=$(((blk - rr_off % blk) % blk))
    [ "$rr_head" -le "$rr_len" ] || rr_head=$rr_len
    rr_start=$((rr_off + rr_head))
    rr_rest=$((rr_len - rr_head))
    rr_blocks=$((rr_rest / blk))
    rr_tail=$((rr_rest % blk))
    if [ "$rr_head" -gt 0 ]; then
        dd if="$rr_f" bs=1 skip="$rr_off" count="$rr_head" 2>/dev/null || return 1
    fi
    if [ "$rr_blocks" -gt 0 ]; then
        dd if="$rr_f" bs="$blk" skip=$((rr_start / blk)) count="$rr_blocks" 2>/dev/null || return 1
    fi
    if [ "$rr_tail" -gt 0 ]; then
        dd if="$rr_f" bs=1 skip=$((rr_start + rr_blocks * blk)) count="$rr_tail" 2>/dev/null || return 1
    fi
}

# curl_code METHOD URL [curl options]: prints the answer's status (000 when none came); the
# answer's headers go to $tmp/h, its body to $tmp/b, curl's complaint to $tmp/e.
curl_code() {
    cc_method=$1 cc_url=$2
    shift 2
    if [ "$cc_method" = HEAD ]; then
        set -- -I "$@"
    else
        set -- -X "$cc_method" "$@"
    fi
    # SFX_CURL_OPTS is split into words on purpose.
    # shellcheck disable=SC2086
    cc_code=$(curl -q -K "$cfg" -sS $insecure ${SFX_CURL_OPTS:-} --speed-limit 1 --speed-time 120 \
        -H 'Tus-Resumable: 1.0.0' -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' "$@" "$cc_url" \
        2>"$tmp/e") || true
    case $cc_code in
    [0-9][0-9][0-9]) printf '%s' "$cc_code" ;;
    *) printf '000' ;;
    esac
}

# request METHOD URL [curl options]: sets $code (see curl_code).
request() {
    : >"$tmp/h"
    : >"$tmp/b"
    code=$(curl_code "$@")
}

# hdr NAME: the value of the last NAME header of the last answer.
hdr() {
    tr -d '\r' <"$tmp/h" | awk -v k="$1" '
        BEGIN { k = tolower(k) }
        { i = index($0, ":"); if (i > 1 && tolower(substr($0, 1, i - 1)) == k) {
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); val = v } }
        END { printf "%s", val }'
}

# What went wrong with the last request, for a person.
reason() {
    if [ "$code" = 000 ]; then
        rs=$(tr -d '\r' <"$tmp/e" | head -n 2)
        printf 'no answer from the server (%s)' "${rs:-connection failed}"
    else
        rs=$(tr -d '\r' <"$tmp/b" | head -n 3 | cut -c1-300 | tr '\n' ' ')
        printf 'HTTP %s: %s' "$code" "${rs:-(no reason given)}"
    fi
}

is_number() {
    case $1 in
    '' | *[!0-9]*) return 1 ;;
    *) return 0 ;;
    esac
}

# Resolves the server's Location (an absolute path, or a full URL).
resolve() {
    case $1 in
    http://* | https://*) printf '%s' "$1" ;;
    /*) printf '%s%s' "$origin" "$1" ;;
    *) printf '%s/+tus/%s' "$base" "$1" ;;
    esac
}

# Waits before try number $1 (1, 2, 4 ... 30 s), or as long as the server's Retry-After says.
backoff() {
    bo_wait=$(hdr Retry-After)
    if ! is_number "$bo_wait"; then
        bo_wait=1 bo_i=1
        while [ "$bo_i" -lt "$1" ] && [ "$bo_wait" -lt 30 ]; do
            bo_wait=$((bo_wait * 2)) bo_i=$((bo_i + 1))
        done
    fi
    [ "$bo_wait" -le 60 ] || bo_wait=60
    sleep "$bo_wait"
}

# Asks the server how much of $url it has: sets $offset, or returns 1 (with $code) when the
# upload is gone or refused.
ask_offset() {
    ao_try=1
    while :; do
        request HEAD "$url"
        case $code in
        200 | 204)
            ao_off=$(hdr Upload-Offset)
            ao_len=$(hdr Upload-Length)
            if is_number "$ao_off"; then
                if [ -n "$ao_len" ] && [ "$ao_len" != "$size" ]; then
                    code=409
                    return 1
                fi
                offset=$ao_off
                return 0
            fi
            ;;
        404 | 410 | 403 | 401 | 400 | 412) return 1 ;;
        esac
        [ "$ao_try" -lt "$max_tries" ] || return 1
        say "$name: $(reason); asking again"
        backoff "$ao_try"
        ao_try=$((ao_try + 1))
    done
}

# Creates the upload: sets $url and $offset.
create() {
    meta="filename $(b64_string "$name")"
    [ -z "$reference" ] || meta="$meta,reference $(b64_string "$reference")"
    [ -z "$comment" ] || meta="$meta,comment $(b64_string "$comment")"
    cr_try=1
    while :; do
        request POST "$base/+tus/" -H "Upload-Length: $size" -H "Upload-Metadata: $meta" \
            -H 'Content-Length: 0'
        case $code in
        201)
            cr_loc=$(hdr Location)
            [ -n "$cr_loc" ] || die "$name: the server created the upload but sent no Location"
            url=$(resolve "$cr_loc")
            offset=$(hdr Upload-Offset)
            is_number "$offset" || offset=0
            return 0
            ;;
        000 | 429 | 500 | 502 | 503 | 504) ;;
        *)
            refused
            return 1
            ;;
        esac
        if [ "$cr_try" -ge "$max_tries" ]; then
            say "error: $name: giving up after $cr_try tries: $(reason)"
            return 1
        fi
        say "$name: $(reason); trying again"
        backoff "$cr_try"
        cr_try=$((cr_try + 1))
    done
}

# Says why the server refused, with what to do about it.
refused() {
    say "error: $name: the server refused the upload: $(reason)"
    case $code in
    401 | 403) say "check the password (-p) or the link's token (-t)" ;;
    410) say "this upload link was revoked or has expired: ask the support team for a new one" ;;
    413) say "the file is larger than the server accepts" ;;
    507) say "the server is out of disk space: please tell the support team" ;;
    esac
}

save_state() {
    printf '%s %s\n%s\n' "$size" "$mtime" "$url" >"$state.tmp" && mv "$state.tmp" "$state"
}

percent() {
    if [ "$size" -gt 0 ]; then echo $((offset * 100 / size)); else echo 100; fi
}

upload_file() {
    file=$1
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        say "error: $file: not a readable file"
        return 1
    fi
    dir=$(dirname -- "$file")
    abs=$(cd -- "$dir" && pwd -P)/${file##*/}
    name=${abs##*/}
    size=$(wc -c <"$file" | tr -d ' ')
    mtime=$(file_mtime "$file")
    state=$cache/$(printf '%s\n%s\n' "$base" "$abs" | sha256_stdin | cut -c1-32)
    url=""
    offset=0
    restarted=0

    if [ -f "$state" ]; then
        st_size="" st_mtime="" st_url=""
        { read -r st_size st_mtime && read -r st_url; } <"$state" || true
        if [ "$st_size" = "$size" ] && [ "$st_mtime" = "$mtime" ] && [ -n "$st_url" ]; then
            url=$st_url
            if ask_offset; then
                say "$name: resuming the interrupted upload at $offset of $size bytes"
            else
                say "$name: the interrupted upload cannot be continued ($(reason)); starting over"
                url=""
            fi
        else
            say "$name: changed since the interrupted upload; starting over"
            if [ -n "$st_url" ]; then
                url=$st_url
                request DELETE "$url"
                url=""
            fi
        fi
        rm -f "$state"
    fi
    if [ -z "$url" ]; then
        create || return 1
        say "$name: uploading $size bytes"
    fi
    save_state || say "warning: cannot write $state: an interrupted upload will start over"

    try=1
    while [ "$offset" -lt "$size" ]; do
        end=$(((offset / chunk + 1) * chunk))
        [ "$end" -le "$size" ] || end=$size
        len=$((end - offset))
        sum=$(read_range "$file" "$offset" "$len" | sha256_stdin)
        sum=$(b64_hex "$sum")
        # Content-Length with no Transfer-Encoding: curl streams dd's output as the exact body.
        : >"$tmp/h"
        : >"$tmp/b"
        code=$(read_range "$file" "$offset" "$len" | curl_code PATCH "$url" -T - \
            -H "Content-Length: $len" -H 'Transfer-Encoding:' \
            -H 'Content-Type: application/offset+octet-stream' \
            -H "Upload-Offset: $offset" -H "Upload-Checksum: sha256 $sum")
        case $code in
        204 | 200)
            new=$(hdr Upload-Offset)
            if is_number "$new" && [ "$new" -gt "$offset" ]; then
                offset=$new try=1
                say "$name: $(percent)% ($offset of $size bytes)"
                continue
            fi
            say "$name: unexpected Upload-Offset '$new' after a chunk"
            ;;
        409 | 460 | 000 | 429 | 500 | 502 | 503 | 504) ;;
        404 | 410)
            if [ "$restarted" = 0 ]; then
                say "$name: the server no longer has this upload ($(reason)); starting over"
                restarted=1
                create || { rm -f "$state"; return 1; }
                save_state || true
                continue
            fi
            say "error: $name: the upload disappeared again: $(reason)"
            rm -f "$state"
            return 1
            ;;
        *)
            refused
            return 1
            ;;
        esac
        if [ "$try" -ge "$max_tries" ]; then
            say "error: $name: giving up after $try tries: $(reason)"
            say "run the same command again to continue"
            return 1
        fi
        say "$name: $(reason); trying again"
        [ "$code" = 409 ] || [ "$code" = 460 ] || backoff "$try"
        try=$((try + 1))
        # Continue from what the server really has.
        if ! ask_offset; then
            say "error: $name: cannot ask the server how much it has: $(reason)"
            return 1
        fi
    done

    # The completing answer carries the sfx headers; after a resume, HEAD has them.
    remote=$(hdr Sfx-Sha256)
    if [ -z "$remote" ]; then
        ask_offset || true
        remote=$(hdr Sfx-Sha256)
    fi
    item_url=$(hdr Sfx-Item-Url)
    item=$(hdr Sfx-Item)
    [ -n "$item_url" ] || [ -z "$item" ] || item_url=$base/$item
    # A server without a configured public URL gives a path.
    case $item_url in /*) item_url=$base$item_url ;; esac
    say "$name: checking the SHA-256"
    local_sum=$(sha256_stdin <"$file")
    rm -f "$state"
    if [ "$(file_mtime "$file")" != "$mtime" ] || [ "$(wc -c <"$file" | tr -d ' ')" != "$size" ]; then
        say "error: $name: the file changed during the upload; upload it again"
        return 1
    fi
    if [ -z "$remote" ]; then
        say "error: $name: the server did not confirm the upload ($(reason))"
        return 1
    fi
    if [ "$remote" != "$local_sum" ]; then
        say "error: $name: SHA-256 mismatch: the server has $remote, the file is $local_sum"
        return 1
    fi
    printf 'uploaded %s\n  filename: %s\n  size:     %s bytes\n  sha256:   %s\n  item:     %s\n' \
        "$abs" "$name" "$size" "$local_sum" "${item_url:-?}"
}

sfx_main "$@"
