#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Installs what building and running Capvisor needs, and nothing when it is
# already there: QEMU for 32-bit Arm, the device-tree compiler, gdb-multiarch,
# cpio, e2fsprogs, binutils, mtools, dosfstools and grub-common (Debian packages; with the
# argument `profile`, llvm too), and the
# pinned Rust toolchain with the armv7a-none-eabi
# target (from rust-toolchain.toml, through rustup).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
command -v gdb-multiarch >/dev/null 2>&1 || missing+=(gdb-multiarch)
# The Linux guest's initramfs (tools/linux-images.sh; readelf lists the
# libraries its mke2fs needs).
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
# U-Boot's boot disk (tools/boot-disk.sh: mkfs.ext4 -d).
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
# The UEFI guest's EFI system partition, a FAT image built without root
# (tools/uefi-esp.sh).
command -v mcopy >/dev/null 2>&1 || missing+=(mtools)
# Its GRUB (\EFI\BOOT\BOOTARM.EFI), made by grub-mkimage from Debian's
# arm-efi modules.
command -v grub-mkimage >/dev/null 2>&1 || missing+=(grub-common)
# (mkfs.fat is in sbin, outside a user's PATH.)
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.fat >/dev/null 2>&1 || missing+=(dosfstools)
# make exit-profile (tools/setup.sh profile) reads the hypervisor's symbols,
# lines and disassembly with the LLVM tools.
if [ "${1:-}" = profile ]; then
    command -v llvm-objdump >/dev/null 2>&1 || missing+=(llvm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} with apt"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is required (https://rustup.rs); it installs the toolchain in rust-toolchain.toml" >&2
    exit 1
fi
# rustup installs the channel, components and targets named in
# rust-toolchain.toml the first time a tool runs in this directory.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^${toolchain}"; then
    echo "setup: installing Rust ${toolchain}"
    rustup toolchain install "${toolchain}" --profile minimal --component rustfmt,clippy --target armv7a-none-eabi
fi
if ! rustup target list --installed --toolchain "${toolchain}" | grep -q '^armv7a-none-eabi$'; then
    echo "setup: adding the armv7a-none-eabi target"
    rustup target add --toolchain "${toolchain}" armv7a-none-eabi
fi
for component in rustfmt clippy; do
    if ! rustup component list --installed --toolchain "${toolchain}" | grep -q "^${component}"; then
        rustup component add --toolchain "${toolchain}" "${component}"
    fi
done
