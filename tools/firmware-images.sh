#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Fetches the firmware images VMs can boot from Debian packages, into DIR
# (default target/firmware), and reuses them when they are already there:
#   u-boot.bin        Debian's U-Boot for QEMU's virt machine, 32-bit Arm
#                     (u-boot-qemu: usr/lib/u-boot/qemu_arm/u-boot.bin), built
#                     to run from address 0, the virt platform's first flash bank
#   AAVMF32_CODE.fd   EDK2's UEFI for QEMU's virt machine, 32-bit Arm
#                     (qemu-efi-arm: usr/share/AAVMF/AAVMF32_CODE.fd), cut to
#                     its 2 MiB firmware volume: the package pads it with
#                     zeros to the 64 MiB of a flash bank, which would only
#                     make the system image 62 MiB larger (the script checks
#                     that what it cuts is all zeros). Its variable store
#                     is the VM's second flash bank, erased at power on
#                     (the package's AAVMF32_VARS.fd is all zeros, which
#                     EDK2 formats the same way).
# (system descriptions name them: systems/u-boot.toml, systems/uefi.toml,
# tests/systems/*.toml).
# Like tools/linux-images.sh, the packages come through apt with a private
# state under DIR (armhf lists and downloads), so the machine's package
# configuration is not touched. Needs apt-get and dpkg-deb.
#
#   tools/firmware-images.sh [DIR]
set -euo pipefail
dir="${1:-target/firmware}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [ -s "$dir/u-boot.bin" ] && [ -s "$dir/AAVMF32_CODE.fd" ]; then
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

# Downloads package $1 into the private cache and unpacks it into
# $dir/work; prints the package's version.
unpack() {
    echo "firmware-images: downloading $1" >&2
    rm -f "$apt_state"/debs/"$1"_*.deb
    if ! (cd "$apt_state/debs" && apt-get "${apt[@]}" download "$1" > "$apt_state/download.log" 2>&1); then
        echo "firmware-images: cannot download $1; apt said:" >&2
        cat "$apt_state/update.log" "$apt_state/download.log" >&2
        exit 1
    fi
    rm -rf "$dir/work"
    mkdir -p "$dir/work"
    dpkg-deb -x "$apt_state"/debs/"$1"_*.deb "$dir/work"
    dpkg-deb -f "$apt_state"/debs/"$1"_*.deb Version
}

if [ ! -s "$dir/u-boot.bin" ]; then
    version=$(unpack u-boot-qemu)
    cp "$dir/work/usr/lib/u-boot/qemu_arm/u-boot.bin" "$dir/u-boot.bin.tmp"
    mv "$dir/u-boot.bin.tmp" "$dir/u-boot.bin"
    echo "firmware-images: $dir/u-boot.bin (u-boot-qemu $version, $(stat -c %s "$dir/u-boot.bin") bytes)" >&2
fi

if [ ! -s "$dir/AAVMF32_CODE.fd" ]; then
    version=$(unpack qemu-efi-arm)
    code="$dir/work/usr/share/AAVMF/AAVMF32_CODE.fd"
    volume=$((2 * 1024 * 1024))
    if [ "$(tail -c +$((volume + 1)) "$code" | tr -d '\0' | wc -c)" != 0 ]; then
        echo "firmware-images: $code has bytes past its first 2 MiB; not cutting it" >&2
        exit 1
    fi
    head -c "$volume" "$code" > "$dir/AAVMF32_CODE.fd.tmp"
    mv "$dir/AAVMF32_CODE.fd.tmp" "$dir/AAVMF32_CODE.fd"
    echo "firmware-images: $dir/AAVMF32_CODE.fd (qemu-efi-arm $version, the first $volume of $(stat -c %s "$code") bytes)" >&2
fi
rm -rf "$dir/work"
