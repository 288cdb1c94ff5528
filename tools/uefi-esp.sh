#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Builds a FAT EFI system partition image for a UEFI VM, without root
# (mtools), from which the firmware boots Linux by itself:
#
#   \EFI\BOOT\BOOTARM.EFI   GRUB for 32-bit Arm UEFI, the removable-media
#                           path the boot manager tries before its shell;
#                           its embedded configuration finds \linux.efi and
#                           boots it with `console=ttyAMA0 earlycon` and
#                           \initrd.img
#   \linux.efi              the armmp zImage (CONFIG_EFI_STUB=y: an EFI
#                           application), its PE/COFF image size grown
#   \initrd.img             the busybox initramfs
#
# Two workarounds for Debian's armmp 6.1 kernel, both needed natively on
# QEMU `virt` with the same firmware too:
# - The zImage's decompressor keeps its stack and 64 KiB heap just past
#   the end of the image its PE/COFF header declares (SizeOfImage), and the
#   firmware allocates only that much for it: what the firmware loaded
#   next (the shell's or GRUB's image, mapped read-only) sits right above,
#   and the decompressor's first heap store takes a data abort just after
#   "Exiting boot services". The copy on the ESP declares 1 MiB more
#   (SizeOfImage and its last section's virtual size), which the firmware
#   allocates and fills with zeros; the file itself is unchanged otherwise.
# - The kernel lacks CONFIG_EFI_GENERIC_STUB_INITRD_CMDLINE_LOADER, so its
#   EFI stub ignores `initrd=` on its command line: it takes the initrd
#   only through the LoadFile2 protocol, which GRUB's `initrd` provides
#   (the UEFI shell does not).
#
# GRUB is made with grub-mkimage (grub-common, installed by tools/setup.sh)
# from the arm-efi modules of Debian's grub-efi-arm-bin (armhf), fetched
# like tools/linux-images.sh does, through apt with a private state under
# the output's directory (grub/), and kept there.
#
# The image is a whole disk of 512-byte sectors (no partition table: EDK2,
# GRUB and Linux all take a bare FAT file system), to pack as an image
# disk (`[[vm.disk]] file = ...`, tests/systems/uefi-linux.toml).
#
#   tools/uefi-esp.sh OUT ZIMAGE INITRD
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: tools/uefi-esp.sh OUT ZIMAGE INITRD" >&2
    exit 2
fi
out="$1" zimage="$2" initrd="$3"
for tool in mformat mcopy mmd grub-mkimage apt-get dpkg-deb od; do
    command -v "$tool" >/dev/null 2>&1 || { echo "uefi-esp: $tool missing (tools/setup.sh installs what is needed)" >&2; exit 1; }
done
outdir="$(cd "$(dirname "$out")" && pwd)"

# GRUB's arm-efi modules.
grub="$outdir/grub"
modules="$grub/work/usr/lib/grub/arm-efi"
if [ ! -s "$modules/linux.mod" ]; then
    apt_state="$grub/apt"
    mkdir -p "$apt_state/lists/partial" "$apt_state/cache" "$apt_state/debs"
    apt=(-oAPT::Architecture=armhf -oAPT::Architectures=armhf
         "-oDir::State::Lists=$apt_state/lists" "-oDir::Cache=$apt_state/cache"
         "-oDir::Cache::archives=$apt_state/debs")
    echo "uefi-esp: fetching the armhf package lists" >&2
    # As in tools/linux-images.sh: one index mid-sync fails the update but
    # the main one still loads; the download says if it did not.
    apt-get "${apt[@]}" update > "$apt_state/update.log" 2>&1 || true
    rm -f "$apt_state"/debs/grub-efi-arm-bin_*.deb
    if ! (cd "$apt_state/debs" && apt-get "${apt[@]}" download grub-efi-arm-bin > "$apt_state/download.log" 2>&1); then
        echo "uefi-esp: cannot download grub-efi-arm-bin; apt said:" >&2
        cat "$apt_state/update.log" "$apt_state/download.log" >&2
        exit 1
    fi
    rm -rf "$grub/work"
    mkdir -p "$grub/work"
    dpkg-deb -x "$apt_state"/debs/grub-efi-arm-bin_*.deb "$grub/work"
fi

tmpdir="$out.d"
rm -rf "$tmpdir"
mkdir -p "$tmpdir"
# GRUB's configuration, built into its image: the ESP is whichever disk
# holds \linux.efi.
cat > "$tmpdir/early.cfg" <<'CFG'
search --no-floppy --file /linux.efi --set=root
echo "uefi-esp: GRUB boots /linux.efi from $root"
linux /linux.efi console=ttyAMA0 earlycon
initrd /initrd.img
boot
CFG
grub-mkimage -d "$modules" -O arm-efi -o "$tmpdir/BOOTARM.EFI" -p /EFI/BOOT \
    -c "$tmpdir/early.cfg" part_msdos part_gpt fat linux normal boot echo ls \
    configfile search search_fs_file

# The kernel with its PE/COFF image 1 MiB larger (see above). Offsets are
# the PE32 format's: the PE header's offset at 0x3c; in that header the
# section count at +6, the optional header's size at +20, the optional
# header at +24 with SizeOfImage at +56, then the 40-byte section headers,
# each with its VirtualSize at +8.
cp "$zimage" "$tmpdir/linux.efi"
u16() { od -An -tu2 -j "$1" -N2 "$tmpdir/linux.efi" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N4 "$tmpdir/linux.efi" | tr -d ' '; }
put32() {
    local v=$2
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)))" |
        dd of="$tmpdir/linux.efi" bs=1 seek="$1" conv=notrunc status=none
}
pe=$(u32 60)
if [ "$(od -An -c -j "$pe" -N2 "$tmpdir/linux.efi" | tr -d ' ')" != PE ] || [ "$(u16 $((pe + 24)))" != 267 ]; then
    echo "uefi-esp: $zimage is not a PE32 image (a kernel without CONFIG_EFI_STUB?)" >&2
    exit 1
fi
extra=$((1024 * 1024))
sections=$(u16 $((pe + 6)))
optional=$((pe + 24))
last=$((optional + $(u16 $((pe + 20))) + 40 * (sections - 1)))
image_size=$(u32 $((optional + 56)))
put32 $((optional + 56)) $((image_size + extra))
put32 $((last + 8)) $(( $(u32 $((last + 8))) + extra ))
echo "uefi-esp: linux.efi SizeOfImage $image_size -> $(u32 $((optional + 56)))" >&2

# Room for the files and the FAT itself, in whole MiB (Capvisor's
# virtio-blk takes requests up to 64 MiB, so the kernel needs no
# particular layout).
bytes=$(( $(stat -c %s "$zimage") + $(stat -c %s "$initrd") ))
mib=$(( 3 * bytes / 1048576 + 16 ))
img="$tmpdir/esp.img"
truncate -s "${mib}M" "$img"
mformat -i "$img" -v CAPVISOR ::
mmd -i "$img" ::/EFI ::/EFI/BOOT
mcopy -i "$img" "$tmpdir/BOOTARM.EFI" ::/EFI/BOOT/BOOTARM.EFI
mcopy -i "$img" "$tmpdir/linux.efi" ::/linux.efi
mcopy -i "$img" "$initrd" ::/initrd.img
mv "$img" "$out"
rm -rf "$tmpdir"
echo "uefi-esp: $out ($mib MiB: EFI/BOOT/BOOTARM.EFI, linux.efi, initrd.img)" >&2
