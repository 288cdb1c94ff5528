#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Fetches the firmware images VMs can boot from Debian packages, into DIR
# (default target/firmware), and reuses them when they are already there:
#   u-boot.bin   Debian's U-Boot for QEMU's virt machine, 32-bit Arm
#                (u-boot-qemu: usr/lib/u-boot/qemu_arm/u-boot.bin), built
#                to run from address 0, the virt platform's first flash bank
# (system descriptions name it: systems/u-boot.toml, tests/systems/*.toml).
# Like tools/linux-images.sh, the package comes through apt with a private
# state under DIR (armhf lists and downloads), so the machine's package
# configuration is not touched. Needs apt-get and dpkg-deb.
#
#   tools/firmware-images.sh [DIR]
set -euo pipefail
dir="${1:-target/firmware}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [ -s "$dir/u-boot.bin" ]; then
    exit 0
fi
apt_state="$dir/apt"
mkdir -p "$apt_state/lists/partial" "$apt_state/cache" "$apt_state/debs"
apt=(-oAPT::Architecture=armhf -oAPT::Architectures=armhf
     "-oDir::State::Lists=$apt_state/lists" "-oDir::Cache=$apt_state/cache"
     "-oDir::Cache::archives=$apt_state/debs")
echo "firmware-images: fetching the armhf package lists" >&2
# The update may exit 100 when one index (often security's) is mid-sync;
# the main index still loads, and the download below says if it did not.
apt-get "${apt[@]}" update > "$apt_state/update.log" 2>&1 || true
echo "firmware-images: downloading u-boot-qemu" >&2
if ! (cd "$apt_state/debs" && apt-get "${apt[@]}" download u-boot-qemu > "$apt_state/download.log" 2>&1); then
    echo "firmware-images: cannot download u-boot-qemu; apt said:" >&2
    cat "$apt_state/update.log" "$apt_state/download.log" >&2
    exit 1
fi
work="$dir/work"
rm -rf "$work"
mkdir -p "$work"
dpkg-deb -x "$apt_state"/debs/u-boot-qemu_*.deb "$work"
cp "$work/usr/lib/u-boot/qemu_arm/u-boot.bin" "$dir/u-boot.bin.tmp"
mv "$dir/u-boot.bin.tmp" "$dir/u-boot.bin"
version=$(dpkg-deb -f "$apt_state"/debs/u-boot-qemu_*.deb Version)
rm -rf "$work"
echo "firmware-images: $dir/u-boot.bin (u-boot-qemu $version, $(stat -c %s "$dir/u-boot.bin") bytes)" >&2
