#!/bin/sh
# The whole test suite (README's test command; .ci/run runs exactly this):
# 1. every test, on the embedded defaults (SQLite and local files; the PostgreSQL and S3 cases
#    run where SFX_TEST_POSTGRES_URL and SFX_TEST_S3_ENDPOINT point at servers);
# 2. the suites of uploads, bepasty REST, tus, IETF, downloads, permissions, alerts, upload links,
#    the console and the browser again, with every server on PostgreSQL + S3 (SFX_TEST_STORE,
#    SFX_TEST_BLOBS; tests/common/postgres.rs, tests/common/s3.rs). The tests that look at the
#    local data directory itself (crash leftovers, sparse files, disk full) are not among them.
set -eu
cd "$(dirname "$0")/.."
cargo test --locked "$@"
if [ -n "${SFX_TEST_POSTGRES_URL:-}" ] && [ -n "${SFX_TEST_S3_ENDPOINT:-}" ]; then
    SFX_TEST_STORE=postgres SFX_TEST_BLOBS=s3 cargo test --locked \
        --test upload_curl --test put_upload --test rest_api --test rest_clients \
        --test tus_resume --test tus_clients --test ietf_uploads --test downloads \
        --test permissions --test alerts --test links --test client_script --test console_list --test console_zip --test console_deliveries \
        --test browser \
        -- --skip a_member_over_4_gib_gets_zip64 --skip zips_in_progress_are_capped_and_given_back
elif [ "${SFX_REQUIRE_S3:-}" = 1 ]; then
    echo "SFX_REQUIRE_S3=1 but SFX_TEST_POSTGRES_URL or SFX_TEST_S3_ENDPOINT is not set" >&2
    exit 1
else
    echo "skipped: the suites on PostgreSQL + S3 (set SFX_TEST_POSTGRES_URL and SFX_TEST_S3_ENDPOINT)"
fi
