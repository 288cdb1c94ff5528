#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Builds a FAT EFI system partition image for a UEFI VM, without root
# (mtools): the Linux zImage as \linux.efi (Debian's armmp kernel has
# CONFIG_EFI_STUB=y: it is an EFI application), the initramfs as
# \initrd.img, and a startup.nsh that the UEFI shell runs after its
# countdown, starting the kernel with its command line and initrd:
#
#   fs0:\linux.efi console=ttyAMA0 initrd=\initrd.img
#
# The kernel is not \EFI\BOOT\BOOTARM.EFI on purpose: the boot manager
# would start that one itself, without a command line. The image is a
# whole disk of 512-byte sectors (no partition table: EDK2 and Linux both
# take a bare FAT file system), to pack as an image disk
# (`[[vm.disk]] file = ...`, tests/systems/uefi-linux.toml).
#
#   tools/uefi-esp.sh OUT ZIMAGE INITRD
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: tools/uefi-esp.sh OUT ZIMAGE INITRD" >&2
    exit 2
fi
out="$1" zimage="$2" initrd="$3"
for tool in mformat mcopy mdel; do
    command -v "$tool" >/dev/null 2>&1 || { echo "uefi-esp: $tool missing (mtools; tools/setup.sh installs it)" >&2; exit 1; }
done
# Room for both files and the FAT itself, in whole MiB.
bytes=$(( $(stat -c %s "$zimage") + $(stat -c %s "$initrd") ))
mib=$(( 3 * bytes / 1048576 + 16 ))
tmp="$out.tmp"
rm -f "$tmp"
truncate -s "${mib}M" "$tmp"
mformat -i "$tmp" -v CAPVISOR ::
# EDK2's FAT driver reads each run of consecutive clusters of a file with
# one block request, and Capvisor's virtio-blk refuses a request over
# 4 MiB (capsules::virtio::blk::MAX_REQUEST_BYTES): the kernel (5 MiB and
# more) is laid out in runs of at most 2 MiB, by writing it into the 2 MiB
# hole a deleted filler leaves before a second filler, repeatedly.
size=$(stat -c %s "$zimage")
run=$((2 * 1024 * 1024))
head -c "$run" /dev/zero > "$out.fill"
holes=$(( (size + run - 1) / run ))
for i in $(seq 1 "$holes"); do
    mcopy -i "$tmp" "$out.fill" "::/hole$i"
    mcopy -i "$tmp" "$out.fill" "::/keep$i"
done
for i in $(seq 1 "$holes"); do
    mdel -i "$tmp" "::/hole$i"
done
mcopy -i "$tmp" "$zimage" ::/linux.efi
for i in $(seq 1 "$holes"); do
    mdel -i "$tmp" "::/keep$i"
done
rm -f "$out.fill"
mcopy -i "$tmp" "$initrd" ::/initrd.img
printf 'fs0:\\linux.efi console=ttyAMA0 initrd=\\initrd.img\r\n' > "$out.nsh"
mcopy -i "$tmp" "$out.nsh" ::/startup.nsh
rm -f "$out.nsh"
mv "$tmp" "$out"
echo "uefi-esp: $out ($mib MiB: linux.efi, initrd.img, startup.nsh)" >&2
