#!/bin/sh
# Installs what tests/browser.rs needs on a fresh Debian 12 (bookworm) machine: a headless
# Chromium and the matching chromedriver (both from Debian, same version). Run as root.
# Then: SFX_REQUIRE_BROWSER=1 cargo test --test browser
set -eu

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium chromium-driver fonts-dejavu-core ca-certificates curl coreutils

# Fail here, not in the test, if the two do not run or do not match.
chromium_version=$(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')
driver_version=$(/usr/bin/chromedriver --version | awk '{print $2}')
echo "chromium $chromium_version, chromedriver $driver_version"
if [ "${chromium_version%%.*}" != "${driver_version%%.*}" ]; then
    echo "chromium and chromedriver major versions differ" >&2
    exit 1
fi
