#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Makes the Linux guest's images from Debian packages, in DIR (default
# target/linux), and reuses them when they are already there:
#   linux-zImage   the stock armhf armmp kernel (linux-image-*-armmp)
#   linux-initrd   a busybox initramfs behind Capvisor's 16-byte image
#                  header (see hyp/src/image.rs)
#   initrd.cpio.gz the same initramfs without the header (for QEMU -initrd)
# The packages come through apt with a private state under DIR (armhf
# lists and downloads), so the machine's package configuration is not
# touched. Needs apt-get, dpkg-deb, cpio and gzip (tools/setup.sh).
#
#   tools/linux-images.sh [DIR]
#   tools/linux-images.sh [--kernel ZIMAGE] [--initrd FILE] DIR
# The second form puts your own kernel (a zImage: checked) and/or initrd
# (any file, e.g. a gzipped cpio) in DIR instead; what is not given comes
# from Debian.
set -euo pipefail
kernel_file=""
initrd_file=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel_file="$2"; shift 2 ;;
        --initrd) initrd_file="$2"; shift 2 ;;
        *) break ;;
    esac
done
dir="${1:-target/linux}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# Capvisor's raw-image header: "CVIMAGE\0", the size (u32 LE), 0 (u32).
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
wrap_raw() { # wrap_raw FILE OUT
    local size
    size=$(stat -c %s "$1")
    { printf 'CVIMAGE\0'; printf "$(le32 "$size")"; printf '\0\0\0\0'; cat "$1"; } > "$2.tmp"
    mv "$2.tmp" "$2"
}

if [ -n "$kernel_file$initrd_file" ]; then
    if [ -z "$kernel_file" ]; then
        # The Debian kernel, made in the default directory.
        "$0" "$(dirname "$dir")/linux" >&2
        kernel_file="$(dirname "$dir")/linux/linux-zImage"
    fi
    if [ ! -f "$kernel_file" ]; then
        echo "linux-images: kernel '$kernel_file': no such file" >&2
        exit 1
    fi
    # A zImage has the magic 0x016f2818 (little-endian) at offset 0x24.
    magic=$(od -An -tx1 -j 36 -N 4 "$kernel_file" | tr -d ' \n')
    if [ "$magic" != "18286f01" ]; then
        echo "linux-images: kernel '$kernel_file' is not a zImage (no magic 0x016f2818 at offset 0x24)" >&2
        exit 1
    fi
    if [ -n "$initrd_file" ] && [ ! -f "$initrd_file" ]; then
        echo "linux-images: initrd '$initrd_file': no such file" >&2
        exit 1
    fi
    if [ -z "$initrd_file" ]; then
        # The Debian initramfs, made in the default directory.
        "$0" "$(dirname "$dir")/linux" >&2
        cp "$(dirname "$dir")/linux/linux-initrd" "$dir/linux-initrd"
    else
        wrap_raw "$initrd_file" "$dir/linux-initrd"
    fi
    cp "$kernel_file" "$dir/linux-zImage"
    echo "linux-images: $dir: kernel $kernel_file, initrd ${initrd_file:-the Debian initramfs}" >&2
    exit 0
fi

# Bumped whenever the initramfs below changes, so cached images are remade.
version=2
if [ -s "$dir/linux-zImage" ] && [ -s "$dir/linux-initrd" ] \
    && [ "$(cat "$dir/images.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
apt_state="$dir/apt"
mkdir -p "$apt_state/lists/partial" "$apt_state/cache" "$apt_state/debs"
apt=(-oAPT::Architecture=armhf -oAPT::Architectures=armhf
     "-oDir::State::Lists=$apt_state/lists" "-oDir::Cache=$apt_state/cache"
     "-oDir::Cache::archives=$apt_state/debs")
echo "linux-images: fetching the armhf package lists" >&2
# The update may exit 100 when one index (often security's) is mid-sync;
# the main index still loads, and the search below says if it did not.
apt-get "${apt[@]}" update > "$apt_state/update.log" 2>&1 || true
kernel=$(apt-cache "${apt[@]}" search --names-only '^linux-image-[0-9.]+-[0-9]+-armmp$' \
    | cut -d' ' -f1 | sort -V | tail -n 1)
if [ -z "$kernel" ]; then
    echo "linux-images: no linux-image-*-armmp package found; apt said:" >&2
    cat "$apt_state/update.log" >&2
    exit 1
fi
echo "linux-images: downloading $kernel and busybox-static" >&2
(cd "$apt_state/debs" && apt-get "${apt[@]}" download "$kernel" busybox-static > /dev/null 2>&1)
work="$dir/work"
rm -rf "$work"
mkdir -p "$work/kernel" "$work/busybox" "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/dev"
dpkg-deb -x "$apt_state/debs/${kernel}"_*.deb "$work/kernel"
dpkg-deb -x "$apt_state"/debs/busybox-static_*.deb "$work/busybox"
cp "$work"/kernel/boot/vmlinuz-* "$dir/linux-zImage.tmp"
cp "$work/busybox/bin/busybox" "$work/root/bin/busybox"
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "capvisor-linux: initramfs up"
uname -a
# make bench boots with capvisor-bench on the command line: power off at
# once, so the run ends by itself.
if grep -q capvisor-bench /proc/cmdline; then
    poweroff -f
fi
exec setsid cttyhack sh
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.cpio.gz"
size=$(stat -c %s "$work/initrd.cpio.gz")
wrap_raw "$work/initrd.cpio.gz" "$dir/linux-initrd"
cp "$work/initrd.cpio.gz" "$dir/initrd.cpio.gz"
mv "$dir/linux-zImage.tmp" "$dir/linux-zImage"
echo "$version" > "$dir/images.version"
rm -rf "$work"
echo "linux-images: $dir/linux-zImage ($kernel), $dir/linux-initrd ($size bytes of initramfs)" >&2
