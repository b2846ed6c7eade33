#!/usr/bin/env bash
# bench/listing.sh [N]: operator listing speed with N items (default 100000), release build.
# Fills a temporary data directory with N items' metadata and times /+list pages, searches and
# the full JSON listing over HTTP on 127.0.0.1 (best and median of 5). Prints figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example listing_bench
exec target/release/examples/listing_bench "${1:-100000}"
