#!/usr/bin/env bash
# System packages splitsdk needs (Debian bookworm, run as root). Idempotent: installs only what is missing.
set -euo pipefail
need=()
for pkg in fonts-dejavu-core clang libclang-rt-14-dev g++-arm-linux-gnueabihf binutils-arm-linux-gnueabihf qemu-user cmake file qemu-system-arm e2fsprogs openssh-client postgresql haproxy libzstd-dev patch; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
