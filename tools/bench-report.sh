#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Writes BENCHMARKS.md (on stdout) from `make bench`'s consoles: for each
# board named after DIR, DIR/BOARD/console.txt (the bench guest under
# -icount) and DIR/BOARD/linux-capvisor.txt (Linux booted under Capvisor),
# and DIR/linux-native.txt (the same Linux natively on QEMU virt).
#   tools/bench-report.sh DIR BOARD...
set -euo pipefail
dir="$1"
shift
boards=("$@")
linux_native="$dir/linux-native.txt"
for board in "${boards[@]}"; do
    if ! grep -q '^bench: done' "$dir/$board/console.txt"; then
        echo "bench-report: the benchmark run on $board did not finish; console follows" >&2
        cat "$dir/$board/console.txt" >&2
        exit 1
    fi
done
cat <<'HEAD'
# Benchmarks

Instruction counts of Capvisor's trap paths on each board (both a
Cortex-A15 under QEMU), measured by the bench guest
(`tests/guests/src/bin/bench.rs`) with the cycle counter PMCCNTR under
`-icount shift=0`, where it advances one per instruction executed in the
guest and in Hyp mode (what spans two VMs, whose PMCCNTRs are their own,
with the physical counter CNTPCT: see the notes under the table). The
figures are exact and reproducible; each is the minimum and the mean over
the runs, less the cost of the two counter reads (the baseline row).

Made by:

```sh
make bench
```

HEAD
# One table, the boards side by side: each board's rows, plus the VM
# switch under preemption computed from its gap lines.
rows() {
    local console="$1"
    sed -n 's/^bench: \(|.*\)$/\1/p' "$console" | tr -d '\r' | tail -n +3
    preemption "$console"
}
preemption() {
    # VM switch under preemption: both VMs spun reading the physical
    # counter, which all VMs read alike (each VM's PMCCNTR is its own, and
    # its virtual counter has its own offset), and printed each
    # gap in their readings, in instructions, as "bench: main|peer gap
    # BEFORE AFTER". A main gap brackets a peer turn: the switch into the peer
    # is the peer's first reading after its own gap less the main VM's last
    # reading, the switch back the main VM's next reading less the peer's last
    # reading. One loop iteration (9 instructions) is subtracted from each.
    tr -d '\r' < "$1" | sed -n 's/^\(\[bench-peer\] \)\{0,1\}bench: \(main\|peer\) gap \([0-9]*\) \([0-9]*\)$/\2 \3 \4/p' | awk '
        $1 == "main" { ms[++m] = $2; me[m] = $3 }
        $1 == "peer" { ps[++p] = $2; pe[p] = $3 }
        END {
            n = 0; total = 0; min = -1
            for (i = 1; i <= m; i++) {
                for (j = 1; j <= p; j++) {
                    if (pe[j] > ms[i] && pe[j] < me[i]) { d = pe[j] - ms[i] - 9; n++; total += d; if (min < 0 || d < min) min = d }
                    if (ps[j] > ms[i] && ps[j] < me[i]) { d = me[i] - ps[j] - 9; n++; total += d; if (min < 0 || d < min) min = d }
                }
            }
            if (n == 0) { print "bench-report: no VM switch under preemption measured" > "/dev/stderr"; exit 1 }
            printf "| VM switch under preemption (slice end to the other VM) | %d | %d | %d |\n", min, total / n, n
        }'

}
header="| operation |"
rule="|---|"
for board in "${boards[@]}"; do
    header="$header $board min | mean | runs |"
    rule="$rule---:|---:|---:|"
done
echo "$header"
echo "$rule"
for board in "${boards[@]}"; do
    rows "$dir/$board/console.txt" | sed "s/^/$board/"
done | awk -F'|' -v boards="${boards[*]}" '
    {
        board = $1; name = $2; gsub(/^ +| +$/, "", name)
        if (!(name in seen)) { seen[name] = 1; order[++n] = name }
        value[name, board] = sprintf(" %s | %s | %s |", trim($3), trim($4), trim($5))
    }
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    END {
        count = split(boards, list, " ")
        for (i = 1; i <= n; i++) {
            line = "| " order[i] " |"
            for (b = 1; b <= count; b++) {
                cell = value[order[i], list[b]]
                line = line (cell == "" ? " - | - | - |" : cell)
            }
            print line
        }
    }'
# Linux: the kernel's own timestamp of "Run /init" (its counter, which
# under -icount shift=0 advances 1 ns per instruction executed).
init_time() {
    tr -d '\r' < "$1" | sed -n 's/^\[ *\([0-9]*\.[0-9]*\)\] Run \/init as init process$/\1/p' | head -n 1
}
native_init=$(init_time "$linux_native")
if [ -z "$native_init" ]; then
    echo "bench-report: no 'Run /init' line in the native Linux console" >&2
    exit 1
fi
cat <<LINUX

## Linux boot

Debian's armhf armmp kernel with the busybox initramfs, booted to its
\`Run /init\` line under Capvisor on each board and natively on QEMU
\`-M virt -cpu cortex-a15\` with the device tree Capvisor writes
(\`capvisor-dtb\`), 256 MiB, all under \`-icount shift=0\`. The times are
the kernel's own timestamps; under \`-icount\` its counter advances by one
nanosecond per instruction executed (guest and hypervisor), so they are
instruction counts (including time the CPU spent waiting for interrupts).

| boot to \`Run /init\` | seconds (= 10^9 instructions) | ratio to native |
|---|---:|---:|
| native (QEMU virt) | $native_init | 1.000 |
LINUX
for board in "${boards[@]}"; do
    capvisor_init=$(init_time "$dir/$board/linux-capvisor.txt")
    if [ -z "$capvisor_init" ]; then
        echo "bench-report: no 'Run /init' line in the Linux console of $board" >&2
        exit 1
    fi
    echo "| under Capvisor on $board | $capvisor_init | $(awk "BEGIN { printf \"%.3f\", $capvisor_init / $native_init }") |"
done
echo
for board in "${boards[@]}"; do
    exits=$(tr -d '\r' < "$dir/$board/linux-capvisor.txt" | sed -n "s/^capvisor:   VM 1 'linux': [^;]*; exits \(.*\)$/\1/p")
    echo "VM exits during the whole run on $board (boot, then \`poweroff -f\`): $exits."
    echo
done
cat <<'TAIL'
The VM switch row: the bench VM calls YIELD while a second VM
('bench-peer') yields in a loop; the round trip (two switches, each with a
hypercall exit, saving and restoring the banked registers, CP15 state
(with CPACR and ThumbEE), the performance monitors of the bench VM (which
uses them; the peer does not, so its are never touched), the debug
registers (21 reads at every switch-out; written back only when some VM's
are not zero), VFP/NEON state, the VM's interrupt context, the stage-2
switch by VMID without TLB invalidation, and the entry) less the peer's
three loop instructions, halved. Since the isolation audit the switch also
carries the debug registers and the other registers it found shared; the
earlier figures (733 and 839) were also taken with the shared PMCCNTR,
which no longer spans two VMs: the same switch without the debug
registers measured 910 on integrator-cp by the physical counter. Each VM's PMCCNTR is its own (it
stops while the other VM runs), so this row, the scheduling tick and the
switch under preemption are timed with the physical counter CNTPCT, which
all VMs read alike: one tick is 16 instructions under `-icount shift=0`, so their
minimums are exact to 16 instructions and their means to 16 over the
number of samples. On qemu-virt the interrupt context is the GIC's:
GICH_VMCR, GICH_APR, the occupied list registers and the timer's mask.

GIC acknowledge + EOI: GICC_IAR and GICC_EOIR for an SGI the guest sent
itself. On integrator-cp both accesses trap and are emulated; on qemu-virt
the window is the GIC's virtual CPU interface, so they never leave the
guest (the 1 is the instruction between the two reads of the counter).

Virtual interrupt delivery: the guest spins reading PMCCNTR with its
virtual timer armed; from its last reading to the first instruction of its
IRQ vector. On integrator-cp the hypervisor's alarm (counter/timer 1) is
taken to Hyp, serviced, the timer's line raised in the virtual GIC, HCR.VI
set and the guest entered (the mean is higher than the minimum when the
alarm, which has 1 us resolution, fires while the hypervisor is already on
its way into the guest). On qemu-virt the guest timer's own interrupt
(PPI 11) is taken to Hyp, acknowledged, masked, written into a free list
register and the guest entered.

Scheduling tick: the gap in a lone VM's run when its 10 ms slice ends. VM
switch under preemption: from one VM's last instruction before its slice
ended to the other VM's first, seen from both sides (see
`tools/bench-report.sh`).

## Targets and where the instructions go

qemu-virt (the second-board issue): GIC acknowledge + EOI with no exit
<= 40 (met: 1), virtual interrupt delivery <= 400 mean (missed), Linux boot
<= 1.01 of the same kernel on bare `virt` (see the Linux table).

The delivery path was measured instruction by instruction with QEMU's
execution trace (`-d in_asm,exec,nochain -dfilter` on the hypervisor's
text, under `-icount shift=0`), summed per function for one delivery:
the exception entry and register save (about 25), the kernel's exit loop
for an IRQ exit (about 135: counting, asking the platform, the slice and
wake-up checks, reprogramming the one-shot alarm), the platform's interrupt
service (about 95, plus two GICC_IAR reads, the second finding nothing,
and the EOIR/DIR writes), the backend taking the timer interrupt (masking
PPI 27 at the distributor, raising the virtual line and writing the list
register: about 140) and the entry. Cutting it below 400 needs the lean
exit path of a later issue (an IRQ exit that skips the general loop's
wake-up and slice checks when only the running VM's timer fired).

integrator-cp pays for the interrupt backend being a trait object: after
an exit that can change interrupts (an emulated device access, a physical
interrupt) and while the guest's timer is armed, the software backend is
called through a dynamic call and reads CNTV_CTL through another (this
board does not wire the timer's interrupt, so the timer is polled). An
exit with the timer off and nothing changed skips the call. Against the
figures before the backends were split out (null hypercall 150, MMIO read
306, measured the same way), a hypercall costs 7 more instructions and a
device access about 40 more.
TAIL

# Wall clock: the trap paths without -icount (PMCCNTR then counts
# nanoseconds of QEMU's virtual clock, which follows the host's), the
# median over the runs of each run's minimum and mean; and Linux timed on
# the host (tools/wall-bench.py).
cat <<'WALL'

## Wall clock

The same trap paths without `-icount`, where PMCCNTR counts nanoseconds of
host time (QEMU's virtual clock); each figure is the median, over the
alternating runs of both boards, of one run's minimum or mean. These are
what an exit costs QEMU on this machine, not what it would cost a
Cortex-A15; they move with the host's load, so only their ratios to each
other, from one `make bench`, mean anything. No native row: a bare-metal
guest on QEMU has no hypervisor to trap to (Linux's figures below carry
the comparison with native).

WALL
header="| operation (ns) |"
rule="|---|"
for board in "${boards[@]}"; do
    header="$header $board min | mean | runs |"
    rule="$rule---:|---:|---:|"
done
echo "$header"
echo "$rule"
for board in "${boards[@]}"; do
    for run in "$dir/$board"/wall-trap-*.txt; do
        [ -e "$run" ] || continue
        # The guest's own rows; not the scheduling tick or the switch under
        # preemption, which find their gaps by a threshold that the host's
        # jitter crosses without -icount.
        sed -n 's/^bench: \(|.*\)$/\1/p' "$run" | tr -d '\r' | tail -n +3 \
            | grep -v 'scheduling tick' | sed "s/^/$board/"
    done
done | awk -F'|' -v boards="${boards[*]}" '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function median(list, count,    sorted, i, j, t) {
        for (i = 1; i <= count; i++) sorted[i] = list[i]
        for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++)
            if (sorted[j] + 0 < sorted[i] + 0) { t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t }
        return count % 2 ? sorted[(count + 1) / 2] : int((sorted[count / 2] + sorted[count / 2 + 1]) / 2)
    }
    {
        board = $1; name = trim($2)
        if (!(name in seen)) { seen[name] = 1; order[++n] = name }
        k = ++count[name, board]
        mins[name, board, k] = trim($3); means[name, board, k] = trim($4)
    }
    END {
        nb = split(boards, list, " ")
        for (i = 1; i <= n; i++) {
            line = "| " order[i] " |"
            for (b = 1; b <= nb; b++) {
                c = count[order[i], list[b]]
                if (c == 0) { line = line " - | - | - |"; continue }
                for (k = 1; k <= c; k++) { m1[k] = mins[order[i], list[b], k]; m2[k] = means[order[i], list[b], k] }
                line = line sprintf(" %s | %s | %d |", median(m1, c), median(m2, c), c)
            }
            print line
        }
    }'
if [ -s "$dir/wall-linux.md" ]; then
    cat <<'WALLLINUX'

Linux in wall clock: Debian's armmp kernel and the busybox initramfs
booted with `capvisor-wall` (`tools/linux-images.sh`), which runs a
200,000-iteration shell loop and `dd if=/dev/zero bs=1M count=64 |
md5sum` (the checksum is checked) and powers off; natively on QEMU
`-M virt -cpu cortex-a15` with the device tree Capvisor writes, and under
Capvisor on each board, 256 MiB each, no `-icount`. `tools/wall-bench.py`
times each phase on the host from the console lines (boot: QEMU's start to
the initramfs's first line; total: to QEMU's exit), running the
configurations in turn, round after round, so that the host's load falls
on all of them alike.

WALLLINUX
    cat "$dir/wall-linux.md"
fi

# The soak, when one has been run (make soak writes target/soak.txt).
soak="$(dirname "$dir")/soak.txt"
echo
echo "## Soak"
echo
if [ -s "$soak" ] && grep -q "soak on " "$soak"; then
    echo "\`make soak\` (Linux with a shell workload beside a hostile guest that"
    echo "attacks throughout, console input typed throughout; wall clock, on a"
    echo "machine also running other work), from \`$(basename "$soak")\`:"
    echo
    tr -d '\r' < "$soak" | grep -o "soak on .*" | sed 's/^/- /'
else
    echo "Not run with these figures: \`make soak\` (10 minutes per board)."
fi
