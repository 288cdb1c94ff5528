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
the runs, less the cost of the two counter reads (the baseline row). The
bare QEMU virt column is the same guest with no hypervisor under it.
Further down: Linux's boot under `-icount`, the lean exit path's targets,
the trap paths and Linux in wall clock, several CPUs (an IPI between
vCPUs on two CPUs, Linux with two vCPUs), and the soak.

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
    # The native run (bare QEMU) has no second VM to switch to.
    [ "$(basename "$(dirname "$console")")" = native ] || preemption "$console"
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
# The bench guest's native run (bare QEMU virt, no hypervisor), when
# make bench made one: a column of its own, named "native", beside the
# boards, with the rows that exist without a hypervisor.
columns=("${boards[@]}")
if [ -s "$dir/native/console.txt" ]; then
    columns+=(native)
fi
# The header of a table with a min, mean and runs column per column.
board_table_header() {
    local header="| $1 |" rule="|---|" board
    for board in "${columns[@]}"; do
        header="$header ${board/#native/bare QEMU virt} min | mean | runs |"
        rule="$rule---:|---:|---:|"
    done
    echo "$header"
    echo "$rule"
}
board_table_header "operation"
for board in "${columns[@]}"; do
    rows "$dir/$board/console.txt" | sed "s/^/$board/"
done | awk -F'|' -v boards="${columns[*]}" '
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
registers (never read: every guest access to them traps, so each vCPU's
copy is current; written back only when some VM's are not zero),
VFP/NEON state, the VM's interrupt context, the stage-2
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

4 KiB and 512-byte virtio-blk write and read requests: the bench VM's disk (slot 0,
`tests/systems/bench.toml`) is a writable image disk of 1 MiB, the RAM
path. The guest publishes a chain (a 16-byte header, 4 KiB of data, the
status byte) and times from its QueueNotify write to the used ring's index
seen advanced, with IRQs masked (it would wait in WFI between polls; an
image disk has completed the request when the notify returns, so it never
waits): 100 writes, each to its own 4 KiB, then 100 reads of the same,
checked against what was written, then the same with 512 bytes. The
count is all of it: the notify's
MMIO exit, the transport and the chain's checks against the VM's RAM, the
copies between the guest's buffer, the disk's bounce buffer and the disk's
bytes, the status byte, the used ring, the interrupt line raised, and the
way back into the guest. The bare QEMU virt column is the same guest
against QEMU's own `virtio-blk-device` (put in slot 0, transport version
2): the device is QEMU's host code, which costs no guest instructions, and
there the guest counts its own instructions with the INST_RETIRED event
counter (PMCCNTR follows QEMU's virtual clock, which moves on while the
CPU sits in WFI for QEMU's thread to finish the request): the notify, the
polls and, when QEMU completes the request after the notify has returned,
one WFI (whether it has varies from run to run: that column moves by a
few instructions).
TAIL
# A request's cost, split by the two sizes into a part per byte and a
# fixed part (minimums).
for board in "${boards[@]}"; do
    tr -d '\r' < "$dir/$board/console.txt" | sed -n 's/^bench: | \(4 KiB\|512-byte\) virtio-blk \(write\|read\) request[^|]*| \([0-9]*\) |.*/\1 \2 \3/p' \
        | awk -v board="$board" '
            { cost[$1, $(NF - 1)] = $NF }
            END {
                for (k = 1; k <= 2; k++) {
                    kind = k == 1 ? "write" : "read"
                    big = cost["4", kind]; small = cost["512-byte", kind]
                    if (big == "" || small == "") continue
                    per = (big - small) / 3584
                    line = line sprintf("%s%s %.2f per byte and %d per request", line == "" ? "" : "; ", kind, per, small - 512 * per)
                }
                if (line != "") printf "\nOn %s, from the two sizes: %s.\n", board, line
            }'
done
cat <<'TAIL'

Where a request's instructions went when these rows were added (`make
exit-profile BOARD=qemu-virt`, one 4 KiB write of 46,623): 25,960 in
`__aeabi_memcpy8`, moving the capsule's `Chain` by value (2 KiB: a copy
of up to 128 descriptors' segments, `capsules/src/virtio/queue.rs`)
twelve times per request (`Chain::default` and the `Cell` take, set and
replace of the request in `VirtioBlk::run` and `complete`), whatever the
request's size; 11,806 copying the 4 KiB out of the guest's RAM
(`VmGuestRam::read`: a word load and four byte stores per word, 11
instructions); 4,358 in `memcpy` into the disk's bytes; 3,030 in
`VirtioBlk::run`; the exit, the routing and the interrupt about 800.

TAIL

# The lean exit path's targets, met or missed, from the tables above.
cat <<'TARGETS'
## The lean exit path: targets and where the instructions go

The targets of the lean-exit-path issue, under `-icount shift=0` (the
minimum, except the delivery row: its mean):

TARGETS
header="| operation | target |"
rule="|---|---:|"
for board in "${boards[@]}"; do
    header="$header $board |"
    rule="$rule---:|"
done
echo "$header"
echo "$rule"
for board in "${boards[@]}"; do
    sed -n 's/^bench: \(|.*\)$/\1/p' "$dir/$board/console.txt" | tr -d '\r' | sed "s/^/$board/"
done | awk -F'|' -v boards="${boards[*]}" '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    BEGIN {
        n = split("null hypercall round trip|emulated MMIO read (virtual UART FR)|GIC acknowledge + end of interrupt (IAR, EOIR)|injected data abort round trip|VM switch (YIELD to the other VM and back, halved)|virtual interrupt delivery (alarm interrupt to the guest'"'"'s IRQ vector)", names, "|")
        split("66 200 400 300 600 600", limits, " ")
        split("min min min min min mean", column, " ")
    }
    { value[trim($2), $1, "min"] = trim($3); value[trim($2), $1, "mean"] = trim($4) }
    END {
        nb = split(boards, list, " ")
        for (i = 1; i <= n; i++) {
            line = "| " names[i] " (" column[i] ") | <= " limits[i] " |"
            for (b = 1; b <= nb; b++) {
                v = value[names[i], list[b], column[i]]
                line = line " " v " (" (v != "" && v + 0 <= limits[i] + 0 ? "met" : "missed") ") |"
            }
            print line
        }
    }'
cat <<'LEAN'

Before this work (`make bench` of the isolation issue, integrator-cp /
qemu-virt): null hypercall 160 / 146, MMIO read 345 / 303, injected abort
487 / 431, GIC acknowledge + EOI 883 / 1, VM switch 1070 / 1174, delivery
mean 555 / 524. What changed, each measured with `make exit-profile`:

- **An exit that resumes at once skips the loop's bookkeeping.** The kernel
  counts the exit in its kind's counter (the total is their sum), dispatches
  it and re-enters; the interrupt backend runs, and the alarm is looked at,
  only after something that can have changed the VM's interrupts (a device
  that says so, a physical interrupt, a new slice); the fault loop detector
  reads the VM's progress from the counters instead of being told of every
  exit; the other outcomes (wait, yield, stop, restart, reflect) leave the
  hot loop through one out-of-line function.
- **Devices say which accesses can change interrupts**
  (`MmioDevice::changes_interrupts`): the UART's status and configuration
  accesses and every GIC distributor read cannot, so polling FR no longer
  re-evaluates the virtual GIC (about 100 instructions on integrator-cp).
- **HVC decodes from HSR alone**, before the other syndrome registers are
  read.
- **Hypercall services declare their function-id ranges**
  (`HypercallDriver::functions`); the routes index them by SMCCC owner, so
  finding a call's service (or that none owns it) calls no service.
- **A reflected fault writes only the two banked registers it changes**
  (LR and SPSR of the mode it enters) instead of moving every banked
  register out of the CPU and back (about 90 instructions).

Several CPUs (issue 14) made every path longer, on one CPU too:
integrator-cp's null hypercall went from 110 to 127 instructions,
qemu-virt's from 96 to 111, the VM switch from 1086 / 1198 to about 1240 /
1340 and delivery from 551 / 521 to about 650 / 605. What the profile
shows: every exit reaches its vCPU's VM through a pointer and asks whether
the VM needs its lock (a VM with one vCPU on the console's CPU, as all of
these, takes none: 6 instructions for the question and the guard that is
not held); a switch also looks at the VMs' change counters (one load per
vCPU), writes VMPIDR, and checks whether the vCPU starts afresh; a VM's
interrupt backend is now its vCPU's. The remainder is the exit loop's
register allocation, which moves with every change to the loop (the same
source measured 124 and 127 on integrator-cp in two builds).

The null hypercall path on integrator-cp before several CPUs, instruction
by instruction (`make exit-profile PROFILE_PATH=110`), grouped:

| instructions | what |
|---:|---|
| 1 | the `hvc` itself traps; the vector at HVBAR+0x14 branches to the trap entry |
| 3 | trap entry: push the guest's r0-r1, vector number, branch |
| 14 | `armv7a_guest_exit`: the context from HTPIDR; store r2-r12, r0-r1, LR_usr, ELR_hyp (PC) and SPSR_hyp (CPSR); return the vector to Rust, popping the hypervisor's callee-saved registers |
| 11 | `run_guest`: which vector, read HSR, EC = 0x12, build `Trap::Hypercall` |
| 5 | count the hypercall (load, add, store, and the branches around it) |
| 3 | dispatch on the trap kind (jump table) |
| 24 | the routes: the function id from r0 (3), its SMCCC owner's candidate ranges from a 64-entry table (5), the one range of owner 6 (Capvisor's 0x8600_0000-0x8600_00ff) compared with 0x8600_0fff (9), no candidate left (7) |
| 11 | NOT_SUPPORTED into the guest's r0, back to the loop; the action is "resume" |
| 3 | the exit budget (count down, compare, branch) |
| 20 | integrator-cp only: the interrupt backend need not run (the change flag), but the guest's timer is polled: the vCPU is live, CNTV_CTL read, armed now or at the last entry? (this board does not wire the timer's interrupt; without the poll a guest that arms its timer and keeps running would miss its deadline until the next slice) |
| 5 | the vCPU is switched in (the check `ArchVcpu::run` makes), call the entry |
| 10 | `armv7a_world_switch`: push callee-saved registers, save SP_hyp, HTPIDR, ELR_hyp and SPSR_hyp from the context, LR_usr, r0-r12, `eret` |

qemu-virt's path is the same but for the timer poll (its timer interrupts
physically). Why the targets that are missed cannot be met by trimming:

- **Null hypercall <= 66.** The assembly alone (28: the way into Hyp and
  the return, saving and restoring the registers Hyp shares with the guest
  and the hypervisor's own frame) and the decode, dispatch, routing and
  result (49) already exceed 66; the remaining bookkeeping (counting, the
  budget, the live check) is 13, and integrator-cp's timer poll 20. Reaching 66 would take a hypercall handled
  in the vector assembly without the Rust loop, which gives up counting
  and the routes.
- **MMIO read <= 200.** The fault decode from HSR, HDFAR and HPFAR with a
  40-bit IPA (about 45), finding the device among the VM's windows with
  64-bit arithmetic (about 30), the device's own read through a trait
  object (the UART: 46 for FR, a `RefCell` borrow and the FIFO state), the
  result into the guest's register (a banked-register check), skipping the
  instruction and the `changes_interrupts` question: about 230 on
  integrator-cp. Two rewrites of the window lookup (an indexed loop; a
  `position` search) measured worse (267 and 273): the exit loop is one
  large function, and the compiler's register allocation across it
  decides more than the source; moving `handle` out of line cost 24 to 47
  more on every exit.
- **GIC acknowledge + EOI <= 400 on integrator-cp.** Both accesses trap
  (the board has no GIC): two MMIO exits of about 230 each before any GIC
  work, then the software GIC's acknowledge (123: the highest-priority
  pending, enabled interrupt among 64) and the re-evaluation of the vCPU's
  line after each (about 100). qemu-virt, with the GIC's virtual CPU
  interface, needs no exit at all (1).
- **VM switch <= 600.** One switch saves and restores the CP15 state
  (about 250), the banked registers (86), VFP (21), the performance
  monitors of a VM that uses them (86 to restore), reads the 21 debug
  registers at every switch-out (about 80: QEMU 7.2 does not trap guest
  debug register accesses, so they cannot be switched lazily), programs the
  alarm for the new slice (47 on integrator-cp), plus the hypercall exit
  and the scheduler. Each of these is state the isolation audit found must
  not be shared.
LEAN

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
other, from one `make bench`, mean anything. The bare QEMU virt column
is the same bench guest run with no hypervisor under it (`-M virt`, the
guest's ELF as `-kernel`; it finds itself there by ID_PFR1, which bare QEMU
gives no Virtualization Extensions): what exists without a hypervisor, a
read of the real PL011's FR, the GIC's own acknowledge and EOI, and the
timer's interrupt taken straight to the guest's vector; a hypercall, an
abort reflected by a hypervisor and a VM switch have no native
counterpart. The same column in the instruction table above is 0 or 1:
natively each is one instruction.

WALL
wall_table=$(
board_table_header "operation (ns)"
for board in "${columns[@]}"; do
    for run in "$dir/$board"/wall-trap-*.txt; do
        [ -e "$run" ] || continue
        # The guest's own rows; not the scheduling tick or the switch under
        # preemption, which find their gaps by a threshold that the host's
        # jitter crosses without -icount.
        sed -n 's/^bench: \(|.*\)$/\1/p' "$run" | tr -d '\r' | tail -n +3 \
            | grep -v 'scheduling tick' | sed "s/^/$board/"
    done
done | awk -F'|' -v boards="${columns[*]}" '
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
)
echo "$wall_table"
if [ "${columns[-1]}" = native ]; then
    echo
    echo "Each board's minimum as a ratio to bare QEMU's, where the operation exists there:"
    echo
    header="| operation |"
    rule="|---|"
    for board in "${boards[@]}"; do
        header="$header $board / bare QEMU virt |"
        rule="$rule---:|"
    done
    echo "$header"
    echo "$rule"
    echo "$wall_table" | tail -n +3 | awk -F'|' -v count="${#boards[@]}" '
        function trim(s) { gsub(/^ +| +$/, "", s); return s }
        {
            native = trim($(3 + 3 * count))
            if (native == "-" || native + 0 == 0) next
            line = "| " trim($2) " |"
            for (b = 0; b < count; b++) line = line sprintf(" %.1f |", trim($(3 + 3 * b)) / native)
            print line
        }'
fi
if [ -s "$dir/wall-linux.md" ]; then
    cat <<'WALLLINUX'

Linux in wall clock: Debian's armmp kernel and the busybox initramfs
booted with `capvisor-wall` (`tools/linux-images.sh`), which runs a
200,000-iteration shell loop and `dd if=/dev/zero bs=1M count=64 |
md5sum` (the checksum is checked), then `dd` on its disk (see "Disks in
wall clock" below) and powers off; natively on QEMU
`-M virt -cpu cortex-a15` with the device tree Capvisor writes, and under
Capvisor on each board, 256 MiB each, no `-icount`. `tools/wall-bench.py`
times each phase on the host from the console lines (boot: QEMU's start to
the initramfs's first line; total: to QEMU's exit), each Capvisor run side
by side with a native run on the other CPU (the two swap CPUs every
round), so that both see the same host; the second table is QEMU's own
CPU time for the same phases.

WALLLINUX
    cat "$dir/wall-linux.md"
    cat <<'WALLWHY'

Targets (the lean-exit-path issue): boot <= 1.15, shell loop <= 1.10, dd
<= 1.10 of native, on both boards; boot to the marker under `-icount`
<= 1.005 (the Linux boot table above). For reference, the same workload as
dom0 under Debian's Xen 4.17 on QEMU `virt` measured 1.49 (boot), 1.14
(loop), 1.51 (dd) and 1.28 (total) of native when that issue was filed
(five interleaved runs, not paired; not run by `make bench`). Where the
targets are missed, this is what the emulator does with the extra time,
as measured:

- **The host is noisy.** The same native run took from 12.8 s to 21.7 s
  for the loop within one hour on this machine (its CPU time moves with
  it: the time is not stolen, the host runs slower). Pairing each run with
  a native one on the other CPU, as above, cancels most of it; rounds
  still differ by tens of percent, so differences of 10% between two
  builds need many rounds to show.
- **perf on QEMU** (`perf record -e cpu-clock`, one run each, seconds of
  host time in the loop phase, native / integrator-cp / qemu-virt): the
  generated code 8.81 / 9.83 / 9.68; QEMU's page-table walker 0.45 / 3.17
  / 1.19; filling TLB entries 0.16 / 0.62 / 0.21; other softmmu TLB code
  0.88 / 1.75 / 1.06; looking up translation blocks 4.75 / 6.38 / 5.00. In
  dd: walker 0.48 / 2.23 / 1.27 of 5.95 / 11.00 / 7.26. The extra time is
  TLB refills, each a two-stage walk (every stage-1 descriptor is itself
  translated by stage 2), and the translation-block lookups that follow
  TLB and jump-cache flushes.
- **What flushes.** Nothing on Capvisor's exit and entry path makes QEMU
  flush (the world switch writes ELR_hyp, SPSR_hyp and HTPIDR; HCR is
  written only for HCR.VI, which QEMU does not flush for; VTTBR and the
  CP15 state only at a VM switch; no TLB or cache maintenance per exit).
  The guest flushes: this non-LPAE kernel writes DACR around user accesses
  and CONTEXTIDR at context switches, and QEMU 7.2 flushes its whole TLB
  on either (`dacr_write`, `contextidr_write` in `target/arm/helper.c`).
  The flush events are as many as natively (loop 12.1k native, 17.1k
  integrator-cp, 14.9k qemu-virt; dd 398k / 418k / 410k), but under a
  hypervisor each wipes about 4.1 TLB indexes against 2.1 natively (the
  Hyp, stage-2 and physical indexes are filled too), and every refill
  after it is a two-stage walk.
- **Exits.** The loop phase took about 1,490 exits per second on
  integrator-cp (the trapped GIC CPU interface: about three accesses per
  guest interrupt) and 575 on qemu-virt (interrupts; the guest's GIC CPU
  interface is the hardware's), none natively; exits refill the Hyp's TLB
  entries (13 to 14 per exit after a flush) and break translation-block
  chains. The board with more exits is the slower one in every phase of
  the table above.
- **Large pages.** QEMU 7.2 records a two-stage TLB entry at the larger of
  the two stages' page sizes (`get_phys_addr_twostage` in
  `target/arm/ptw.c`), so with guest RAM in 2 MiB stage-2 blocks every
  guest page is a 2 MiB "large page" to it, and a TLB invalidation by
  address inside that range flushes the whole index. Mapping guest RAM
  with 4 KiB stage-2 pages only (136 level-3 tables per VM) measured, in
  five alternating rounds: boot 1.46 -> 1.26 of native on integrator-cp
  and 1.31 -> 1.17 on qemu-virt, loop and dd unchanged within the noise;
  three paired rounds: qemu-virt boot 1.28 -> 1.11, but dd 1.03 -> 1.57,
  integrator-cp unchanged. Not adopted: the evidence does not hold across
  phases, and pages would cap a VM's RAM at the tables each VM is given
  (or need a table pool shared by all VMs).
- **The lone VM's scheduling tick** (about 100 exits a second with one VM)
  could go (nobody to preempt for), but the board's console input flow
  re-checks held input on interrupts, and a VM that polls its UART
  without a timer would then wait for input forever; kept.
WALLWHY
fi
# The disk phases of the Linux wall-clock runs: the ratios, the issue's
# target on qemu-virt, and Integrator/CP against qemu-virt.
disk_table() {
    # The disk table's wall-clock rows: "name|write 1M s|MiB/s|ratio|...".
    awk '/^\| disk, 64 MiB, wall clock/ { on = 1; next } on && /^\|---/ { next }
        on && /^\|/ { print; next } on { exit }' "$dir/wall-linux.md"
}
if [ -s "$dir/wall-linux.md" ] && [ -n "$(disk_table)" ]; then
    if grep -A4 '^\[\[vm.disk\]\]' tests/systems/linux-wall.toml | grep -q '^board *='; then
        disk_kind="a board-disk slice of the disk file the runner attaches (\`--disk\`)"
        board_disk=1
    else
        disk_kind="an image disk (the RAM path: the board's storage is not involved)"
        board_disk=0
    fi
    cat <<DISKS

## Disks in wall clock

The disk phases of the Linux runs above: \`dd\` on the VM's \`/dev/vda\`
with O_DIRECT (busybox's \`iflag=direct\`/\`oflag=direct\`: no page cache,
each block a request to the disk), 64 MiB of pseudo-random data written
and read back at 1 MiB per request (the disk's first 64 MiB) and at 4 KiB
(its second), each read's md5 checked against the source's. Natively the
disk is QEMU's own \`virtio-blk-device\` on a 128 MiB image file (in slot 0,
transport version 2); under Capvisor it is $disk_kind, 128 MiB
(\`tests/systems/linux-wall.toml\`). The ratios are the medians of the
paired runs' ratios (the tables above); the last column divides
Integrator/CP's median time by qemu-virt's (not paired with each other).

DISKS
    echo "| phase | qemu-virt / native (target <= 1.25) | integrator-cp / native | integrator-cp / qemu-virt |"
    echo "|---|---:|---:|---:|"
    disk_table | awk -F'|' '
        function trim(s) { gsub(/^ +| +$/, "", s); return s }
        {
            name = trim($2)
            for (p = 0; p < 4; p++) {
                seconds[name, p] = trim($(3 + 3 * p)); ratio[name, p] = trim($(5 + 3 * p))
            }
        }
        END {
            split("write 1M|read 1M|write 4K|read 4K", phases, "|")
            virt = "Capvisor on qemu-virt"; cp = "Capvisor on integrator-cp"
            for (p = 0; p < 4; p++) {
                r = ratio[virt, p]
                verdict = (r != "" && r + 0 <= 1.25) ? "met" : "missed"
                across = (seconds[virt, p] + 0 > 0) ? sprintf("%.2f", seconds[cp, p] / seconds[virt, p]) : "-"
                printf "| %s | %s (%s) | %s | %s |\n", phases[p + 1], r, verdict, ratio[cp, p], across
            }
        }'
    if [ "$board_disk" = 0 ]; then
        cat <<'IMAGEDISK'

With an image disk the data never leaves RAM: each request is served
inside the guest's QueueNotify exit (the transport walks the chain, the
capsule copies through the disk's 8 KiB bounce buffer between the guest's
RAM and the disk's bytes in the guest pool, sets the status, the used ring
and the interrupt line), so the time is the hypervisor's instructions
(the instruction table's 4 KiB rows) plus the exits around them: the
notify, the interrupt taken, and the guest's InterruptStatus read and
acknowledge, on Integrator/CP also its trapped GIC CPU interface accesses.
A request of n KiB is n / 8 bounce-buffer steps within one notify (how
large Linux makes its requests is up to its block layer). Natively
the same requests go to QEMU's thread pool and the host's page cache of
the image file. The Integrator/CP column is not the PL181's cost: the
board's SD card is not on this path.
IMAGEDISK
    else
        cat <<'BOARDDISK'

On qemu-virt a board-disk request goes from the guest's virtio queue
through the capsule's bounce buffer to the hypervisor's own driver of
QEMU's virtio-blk device (`chips/qemu-virt/src/disk.rs`, virtio-drivers),
completing by that device's interrupt. On Integrator/CP it goes to the
PL181 driver (`chips/pl181`): the controller has no DMA, so every 32-bit
word of data passes through its 16-word FIFO as one MMIO access by the CPU
(1,024 device accesses per 4 KiB, each a call into QEMU's PL181 and SD
card models), and each request is SD commands, their responses and card
status checks (CMD17/CMD18 to read, CMD24/CMD25 to write, CMD12 to end a
multiple-block transfer), moved on from the driver's poll a bounded
number of bytes per call so that one request never holds the CPU for
long.
BOARDDISK
    fi
fi

# Several CPUs (qemu-virt): the SMP guest's IPI latency under -icount,
# under Capvisor and natively, and Linux with two vCPUs in wall clock.
smp="$dir/smp"
ipi_line() {
    tr -d '\r' < "$1" | grep -o "smp: ipi latency min [0-9]* max [0-9]* ticks, min [0-9]* instructions" | head -n 1
}
if [ -s "$smp/ipi-capvisor.txt" ] && [ -s "$smp/ipi-native.txt" ]; then
    capvisor_ipi=$(ipi_line "$smp/ipi-capvisor.txt")
    native_ipi=$(ipi_line "$smp/ipi-native.txt")
    if [ -z "$capvisor_ipi" ] || [ -z "$native_ipi" ]; then
        echo "bench-report: no 'smp: ipi latency' line in $smp" >&2
        exit 1
    fi
    field() { echo "$1" | awk -v key="$2" '{ for (i = 1; i < NF; i++) if ($i == key) { print $(i + 1); exit } }'; }
    cat <<SMP

## Several CPUs

qemu-virt with \`-smp 4\`. **IPI between vCPUs on two CPUs**: the \`smp\`
guest (\`tests/guests/src/bin/smp.rs\`, \`tests/systems/smp-bench.toml\`:
two vCPUs on CPUs 0 and 1) sends SGI 1 from vCPU 0 to vCPU 1 by
GICD_SGIR, 100 times, stamping the virtual counter just before the write;
vCPU 1 stamps it first thing in its IRQ handler (reached from its IRQ
vector) and answers. Under \`-icount shift=0\` one counter tick is 16
instructions, so the latency is in instructions, all CPUs' together
(QEMU runs them one at a time under \`-icount\`): the sender's trapped
GICD_SGIR write, the kick (a physical SGI) to CPU 1, CPU 1 waking from its
WFI, looking at its vCPU, filling a list register and entering it. The
same guest on bare QEMU \`virt -smp 2\` (QEMU's own GIC and PSCI) for
reference:

| IPI, vCPU 0 to vCPU 1's IRQ vector | min ticks | max ticks | min instructions |
|---|---:|---:|---:|
| under Capvisor on qemu-virt | $(field "$capvisor_ipi" min) | $(field "$capvisor_ipi" max) | $(echo "$capvisor_ipi" | sed 's/.*min \([0-9]*\) instructions/\1/') |
| bare QEMU virt -smp 2 | $(field "$native_ipi" min) | $(field "$native_ipi" max) | $(echo "$native_ipi" | sed 's/.*min \([0-9]*\) instructions/\1/') |
SMP
fi
if [ -s "$smp/wall-linux.md" ]; then
    cat <<'SMPLINUX'

**Linux with two vCPUs** (`tests/systems/linux-wall-smp.toml`: on CPUs 0
and 1) against the same kernel and initramfs on bare QEMU `virt -smp 2`
with the device tree Capvisor writes for two CPUs, the `capvisor-wall`
workload in wall clock (the phases as above). These runs are not paired
side by side: each QEMU would then be pinned to one host CPU and its
vCPUs' threads would share it, which measures the host's scheduler (a
try: boot 6.9 times native, as the spinning guest CPU and the hypervisor's
spin locks wait out host time slices). They alternate instead, each with
both host CPUs. Under `-icount` QEMU runs the CPUs one at a time, and a
guest CPU spinning for another's answer stalls the boot for seconds,
natively as under Capvisor, so there is no instruction count for it.

SMPLINUX
    cat "$smp/wall-linux.md"
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
