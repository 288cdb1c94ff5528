#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Makes the Linux guest's images from Debian packages, in DIR (default
# target/linux), and reuses them when they are already there:
#   linux-zImage   the stock armhf armmp kernel (linux-image-*-armmp)
#   initrd.cpio.gz a busybox initramfs (its /init is written below)
#   boot-disk.img  a disk U-Boot boots both from (tools/boot-disk.sh)
#   blank-disk.img 32 MiB of zeros: a data disk for the initramfs to
#                  format (capvisor.data=, see the init below)
# (system descriptions name them: systems/*.toml, tests/systems/*.toml).
# The packages come through apt with a private state under DIR (armhf
# lists and downloads), so the machine's package configuration is not
# touched. Needs apt-get, dpkg-deb, cpio, gzip and mkfs.ext4
# (tools/setup.sh).
#
#   tools/linux-images.sh [DIR]
set -euo pipefail
dir="${1:-target/linux}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# Bumped whenever the initramfs below changes, so cached images are remade.
version=8
here="$(cd "$(dirname "$0")" && pwd)"
# The data disk the demo formats: sparse, and made whenever missing.
if [ ! -s "$dir/blank-disk.img" ]; then
    truncate -s 32M "$dir/blank-disk.img"
fi
if [ -s "$dir/linux-zImage" ] && [ -s "$dir/initrd.cpio.gz" ] \
    && [ "$(cat "$dir/images.version" 2>/dev/null)" = "$version" ]; then
    exec "$here/boot-disk.sh" "$dir"
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
# e2fsprogs' mke2fs (busybox's makes only ext2) and the libraries it is
# linked with, for the data disk's file system (see the init below).
e2fs_packages="e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 libc6"
echo "linux-images: downloading $kernel, busybox-static and $e2fs_packages" >&2
(cd "$apt_state/debs" && apt-get "${apt[@]}" download "$kernel" busybox-static $e2fs_packages > /dev/null 2>&1)
work="$dir/work"
rm -rf "$work"
mkdir -p "$work/kernel" "$work/busybox" "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/dev"
dpkg-deb -x "$apt_state/debs/${kernel}"_*.deb "$work/kernel"
dpkg-deb -x "$apt_state"/debs/busybox-static_*.deb "$work/busybox"
cp "$work"/kernel/boot/vmlinuz-* "$dir/linux-zImage.tmp"
cp "$work/busybox/bin/busybox" "$work/root/bin/busybox"
# mke2fs, its configuration (the ext4 feature set) and what it links
# with: the dynamic loader at the path its ELF header names and the
# shared libraries it needs, read from its dynamic section.
mkdir -p "$work/e2fs" "$work/root/sbin" "$work/root/etc" "$work/root/lib/arm-linux-gnueabihf"
for package in $e2fs_packages; do
    dpkg-deb -x "$apt_state/debs/${package}"_*.deb "$work/e2fs"
done
cp "$work/e2fs/sbin/mke2fs" "$work/root/sbin/mke2fs"
cp "$work/e2fs/etc/mke2fs.conf" "$work/root/etc/mke2fs.conf"
e2fs_libs=$(readelf -d "$work/e2fs/sbin/mke2fs" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
for library in $e2fs_libs; do
    # Packages put their libraries in /lib or in /usr/lib.
    found=""
    for from in lib usr/lib; do
        if [ -e "$work/e2fs/$from/arm-linux-gnueabihf/$library" ]; then
            found="$work/e2fs/$from/arm-linux-gnueabihf/$library"
        fi
    done
    if [ -z "$found" ]; then
        echo "linux-images: mke2fs needs $library, which none of $e2fs_packages has" >&2
        exit 1
    fi
    cp -L "$found" "$work/root/lib/arm-linux-gnueabihf/$library"
done
ln -s arm-linux-gnueabihf/ld-linux-armhf.so.3 "$work/root/lib/ld-linux-armhf.so.3"
# Modules of Debian's armmp kernel the init loads (with busybox's
# modprobe, which reads modules.dep): the virtio disk drivers, so that a
# VM's virtio-mmio disks are /dev/vda and /dev/vdb (the virtio core and
# rings are built in), and ext4 (which also serves ext2 and ext3) with
# crc32c, which ext4 asks the crypto API for on a file system with
# metadata checksums. The package has no modules.dep (depmod makes it at
# install): each module's dependencies are read here from its own
# .modinfo (`depends=`), recursively, and modules.dep is written in
# depmod's format (a module, then what it needs, the last to be loaded
# first).
modules_dir=$(echo "$work"/kernel/lib/modules/*)
kernel_version=$(basename "$modules_dir")
wanted="virtio_mmio virtio_blk crc32c_generic ext4"
# A module's path under modules_dir (file names may spell _ as -).
module_path() {
    local path
    path=$(cd "$modules_dir" && find kernel -name "$1.ko" -o -name "${1//_/-}.ko" | head -n 1)
    if [ -z "$path" ]; then
        echo "linux-images: no module $1 in $kernel" >&2
        exit 1
    fi
    echo "$path"
}
# The names a module depends on, from its .modinfo.
module_depends() {
    { grep -a -o 'depends=[A-Za-z0-9_,-]*' "$modules_dir/$1" || true; } \
        | head -n 1 | cut -d= -f2 | tr ',' ' '
}
# Prints NAME's dependencies, each after its own (depth first, once each).
declare -A visited=()
load_order() {
    local name=$1 dependency
    for dependency in $(module_depends "$(module_path "$name")"); do
        if [ -z "${visited[$dependency]:-}" ]; then
            visited[$dependency]=1
            load_order "$dependency"
            echo "$dependency"
        fi
    done
}
# Every module to copy: the wanted ones and all they need, each once.
declare -A everything=()
for name in $wanted; do
    everything[$name]=1
    visited=()
    for dependency in $(load_order "$name"); do
        everything[$dependency]=1
    done
done
root_modules="$work/root/lib/modules/$kernel_version"
mkdir -p "$root_modules"
for name in $(printf '%s\n' "${!everything[@]}" | sort); do
    path=$(module_path "$name")
    mkdir -p "$root_modules/$(dirname "$path")"
    cp "$modules_dir/$path" "$root_modules/$path"
    visited=()
    line="$path:"
    for dependency in $(load_order "$name" | tac); do
        line="$line $(module_path "$dependency")"
    done
    echo "$line"
done > "$root_modules/modules.dep"
echo "linux-images: modules.dep:" >&2
sed 's/^/  /' "$root_modules/modules.dep" >&2
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Modules by name, with what each needs (modules.dep); the kernel's own
# requests for a module go to busybox's modprobe too.
echo /bin/modprobe > /proc/sys/kernel/modprobe
modprobe -a virtio_mmio virtio_blk crc32c_generic ext4
echo "capvisor-linux: initramfs up"
uname -a
# The data disk: with capvisor.data=DEVICE on the command line (say
# capvisor.data=/dev/vda), DEVICE is mounted at /data with the ext4
# driver, after being formatted if it holds no file system yet (no
# ext2/3/4 magic 0xef53 at byte 1080): e2fsprogs' mke2fs makes an ext4
# file system with its journal (mke2fs.conf's ext4 features, 4 KiB
# blocks, label capvisor-data). Without the option no disk is touched.
data_disk() {
    local device=$1 name magic tries=0 formatted=""
    name=${device#/dev/}
    while [ ! -b "$device" ] && [ $tries -lt 5 ]; do
        sleep 1
        tries=$((tries + 1))
    done
    if [ ! -b "$device" ]; then
        echo "capvisor-data: no $device; nothing mounted"
        return
    fi
    mkdir -p /data
    magic=$(dd if="$device" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
    if [ "$(cat "/sys/block/$name/ro" 2>/dev/null)" = 1 ]; then
        if [ "$magic" = 53ef ] && mount -t ext4 -o ro "$device" /data; then
            echo "capvisor-data: $device (read-only) mounted at /data"
        else
            echo "capvisor-data: $device is read-only and holds no file system; nothing mounted"
        fi
        return
    fi
    if [ "$magic" != 53ef ]; then
        if ! /sbin/mke2fs -q -t ext4 -b 4096 -E nodiscard -L capvisor-data "$device" > /dev/null; then
            echo "capvisor-data: mke2fs $device failed; nothing mounted"
            return
        fi
        formatted=" (blank: formatted now, ext4)"
    fi
    if mount -t ext4 "$device" /data; then
        echo "capvisor-data: $device mounted at /data$formatted"
    else
        echo "capvisor-data: $device could not be mounted; nothing mounted"
    fi
}
for option in $(cat /proc/cmdline); do
    case "$option" in
        capvisor.data=*) data_disk "${option#capvisor.data=}" ;;
    esac
done
# make bench boots with capvisor-bench on the command line: power off at
# once, so the run ends by itself.
if grep -q capvisor-bench /proc/cmdline; then
    poweroff -f
fi
# make bench's wall-clock runs (tools/wall-bench.py) boot with
# capvisor-wall: a shell loop and a pipe through md5sum, each between two
# markers the host times; then, when the VM has a disk (/dev/vda, of 128
# MiB at least), sequential writes and reads of 64 MiB with O_DIRECT (no
# page cache: every block is a request to the disk), at 1 MiB per request
# in the disk's first 64 MiB and at 4 KiB in its second, each timed
# between markers, and each read's md5 printed beside the source's (the
# host compares them); then power off. The source: 4 MiB from
# /dev/urandom (64 MiB of it would take half a minute), 16 times, each
# copy with its byte values rotated by a different amount (tr), so no two
# 4 KiB blocks are alike. /tmp (tmpfs) holds half the RAM: the source is
# gone before the reads land there.
if grep -q capvisor-wall /proc/cmdline; then
    echo "capvisor-wall: loop start"
    i=0
    while [ $i -lt 200000 ]; do i=$((i+1)); done
    echo "capvisor-wall: loop done $i"
    echo "capvisor-wall: dd start"
    dd if=/dev/zero bs=1M count=64 2>/dev/null | md5sum
    echo "capvisor-wall: dd done"
    if [ -b /dev/vda ]; then
        mkdir -p /tmp
        dd if=/dev/urandom of=/tmp/seed bs=1M count=4 2>/dev/null
        for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
            tr '\000-\377' "\\$(printf %03o $k)-\\377\\000-\\$(printf %03o $((k - 1)))" < /tmp/seed
        done > /tmp/source
        rm -f /tmp/seed
        echo "capvisor-wall: disk source md5 $(md5sum < /tmp/source | cut -d' ' -f1)"
        # disk_phase NAME DD-ARGUMENTS...: one timed dd.
        disk_phase() {
            name=$1
            shift
            echo "capvisor-wall: disk $name start"
            if dd "$@" 2>/tmp/dd.log; then
                echo "capvisor-wall: disk $name done"
            else
                echo "capvisor-wall: disk $name failed: $(cat /tmp/dd.log)"
            fi
        }
        disk_phase "write 1M" if=/tmp/source of=/dev/vda bs=1M count=64 oflag=direct
        disk_phase "write 4K" if=/tmp/source of=/dev/vda bs=4k count=16384 seek=16384 oflag=direct
        rm -f /tmp/source
        disk_phase "read 1M" if=/dev/vda of=/tmp/back bs=1M count=64 iflag=direct
        echo "capvisor-wall: disk read 1M md5 $(md5sum < /tmp/back | cut -d' ' -f1)"
        rm -f /tmp/back
        disk_phase "read 4K" if=/dev/vda of=/tmp/back bs=4k count=16384 skip=16384 iflag=direct
        echo "capvisor-wall: disk read 4K md5 $(md5sum < /tmp/back | cut -d' ' -f1)"
        rm -f /tmp/back
    fi
    poweroff -f
fi
# The SMP guest's run (a VM with 2 vCPUs or more) boots with capvisor-smp:
# how many CPUs are online, the inter-processor interrupts so far (the IPI
# rows of /proc/interrupts and their sum over every CPU), two checksum jobs
# at once (the scheduler spreads them over the CPUs), CPU 1 taken offline
# and brought back (PSCI CPU_OFF and CPU_ON underneath), the IPIs again
# (more by then), then power off.
if grep -q capvisor-smp /proc/cmdline; then
    # The sum of every per-CPU count on the IPI rows ("IPI0: 12 34 name").
    ipis() {
        awk '/^ *IPI[0-9]+:/ {
            for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) sum += $i
        }
        END { print sum + 0 }' /proc/interrupts
    }
    online=/sys/devices/system/cpu/cpu1/online
    echo "capvisor-smp: nproc $(nproc)"
    grep '^ *IPI' /proc/interrupts
    echo "capvisor-smp: ipis $(ipis)"
    mkdir -p /tmp
    for job in 1 2; do
        dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum > "/tmp/job$job" &
    done
    wait
    for job in 1 2; do
        echo "capvisor-smp: job $job sum $(cut -d' ' -f1 "/tmp/job$job")"
    done
    echo 0 > "$online"
    echo "capvisor-smp: cpu1 online $(cat "$online")"
    echo "capvisor-smp: nproc $(nproc)"
    echo 1 > "$online"
    echo "capvisor-smp: cpu1 online $(cat "$online")"
    echo "capvisor-smp: nproc $(nproc)"
    grep '^ *IPI' /proc/interrupts
    echo "capvisor-smp: ipis $(ipis)"
    echo "capvisor-smp: done"
    poweroff -f
fi
# The shell's greeting: the date from the VM's clock (its PL031, read by
# the kernel at boot).
echo "capvisor-linux: $(date)"
exec setsid cttyhack sh
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.cpio.gz"
size=$(stat -c %s "$work/initrd.cpio.gz")
cp "$work/initrd.cpio.gz" "$dir/initrd.cpio.gz"
mv "$dir/linux-zImage.tmp" "$dir/linux-zImage"
echo "$version" > "$dir/images.version"
rm -rf "$work"
echo "linux-images: $dir/linux-zImage ($kernel), $dir/initrd.cpio.gz ($size bytes)" >&2
exec "$here/boot-disk.sh" "$dir"
