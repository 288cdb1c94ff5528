#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Makes the disk a firmware boots Linux from, without root: DIR/boot-disk.img
# (DIR default target/linux, where tools/linux-images.sh left linux-zImage
# and initrd.cpio.gz), a raw disk image with an MBR partition table and one
# partition (type 0x83, marked bootable, from sector 2048 to the end)
# holding an ext4 file system made by `mkfs.ext4 -d` (e2fsprogs) from:
#   /zImage                  the kernel (DIR/linux-zImage)
#   /initrd.gz               the busybox initramfs (DIR/initrd.cpio.gz)
#   /extlinux/extlinux.conf  one entry booting both, command line below
# U-Boot's distro boot (its default bootcmd, `run distro_bootcmd`) scans
# the bootable partitions of virtio 0, finds extlinux/extlinux.conf there
# and boots its entry with `bootz`, passing the device tree at $fdt_addr
# (0x4000_0000: the one the hypervisor wrote); U-Boot reads no partition
# of a disk without a partition table, hence the MBR.
# Remade only when the kernel, the initramfs or this script is newer than
# the disk.
#
#   tools/boot-disk.sh [DIR]
set -euo pipefail
dir="${1:-target/linux}"
kernel="$dir/linux-zImage"
initrd="$dir/initrd.cpio.gz"
disk="$dir/boot-disk.img"
# The kernel command line of the entry.
bootargs="console=ttyAMA0 earlycon"

for file in "$kernel" "$initrd"; do
    if [ ! -s "$file" ]; then
        echo "boot-disk: no $file (tools/linux-images.sh makes it)" >&2
        exit 1
    fi
done
if [ -s "$disk" ] && [ "$disk" -nt "$kernel" ] && [ "$disk" -nt "$initrd" ] \
    && [ "$disk" -nt "$0" ]; then
    exit 0
fi
mkfs=$(PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 || true)
if [ -z "$mkfs" ]; then
    echo "boot-disk: mkfs.ext4 not found (Debian's e2fsprogs; tools/setup.sh installs it)" >&2
    exit 1
fi

work="$dir/boot-disk.work"
rm -rf "$work"
mkdir -p "$work/root/extlinux"
cp "$kernel" "$work/root/zImage"
cp "$initrd" "$work/root/initrd.gz"
cat > "$work/root/extlinux/extlinux.conf" <<EOF
# Capvisor's boot disk (tools/boot-disk.sh): U-Boot's distro boot reads
# this and boots the one entry at once.
default capvisor
timeout 0

label capvisor
    kernel /zImage
    initrd /initrd.gz
    append $bootargs
EOF

# The file system: its contents plus 4 MiB for the file system's own
# structures, in whole MiB.
content=$(du -sb "$work/root" | cut -f1)
fs_mib=$(( (content + (1 << 20) - 1) / (1 << 20) + 4 ))
"$mkfs" -q -F -L capvisor-boot -d "$work/root" "$work/fs.img" "${fs_mib}M" > /dev/null

# The disk: the MBR in sector 0, the partition from sector 2048 (1 MiB).
start=2048
sectors=$(( fs_mib * 2048 ))
# A 32-bit little-endian number as printf escapes.
le32() {
    local value=$1 shift
    for shift in 0 8 16 24; do
        printf '\\x%02x' $(( value >> shift & 255 ))
    done
}
truncate -s $(( (start + sectors) * 512 )) "$work/disk.img"
dd if="$work/fs.img" of="$work/disk.img" bs=512 seek=$start conv=notrunc status=none
# Partition entry 1 at byte 446: bootable (0x80), CHS start/end unused
# (0xfe 0xff 0xff, as for any disk past 8 GiB), type 0x83 (Linux), then
# the first sector and the sector count; the boot signature at 510.
entry="\\x80\\xfe\\xff\\xff\\x83\\xfe\\xff\\xff$(le32 $start)$(le32 $sectors)"
printf "$entry" | dd of="$work/disk.img" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$work/disk.img" bs=1 seek=510 conv=notrunc status=none
mv "$work/disk.img" "$disk"
rm -rf "$work"
echo "boot-disk: $disk ($(stat -c %s "$disk") bytes: MBR, ext4 partition with extlinux.conf)" >&2
