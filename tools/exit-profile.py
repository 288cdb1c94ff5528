#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Where the instructions of each guest exit go (`make exit-profile`).

    tools/exit-profile.py ELF TRACE [--top N] [--path LENGTH]

TRACE is QEMU's execution log of the hypervisor's text, one instruction
per line (`-singlestep -d exec,nochain -dfilter START..END`, under
`-icount shift=0`); ELF is the hypervisor image that ran. The log is cut
into exits at every entry to the Hyp vector table: each exit is the path
from the vector to the `eret` back into the guest (plus, for an exit that
switches VMs or sleeps, everything until the next entry). Identical paths
are counted together.

Prints the N most common paths (default 12), each with its length in
instructions and the instructions per function (inlined code counts in
the function it was inlined into); with --path LENGTH, also the most
common path of that length instruction by instruction, with the innermost
inlined function and source line of each (llvm-addr2line, llvm-objdump).
"""

import argparse
import bisect
import collections
import re
import subprocess
import sys


def symbols(elf):
    table = []
    listing = subprocess.run(["llvm-nm", "-n", "--demangle", elf],
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tTW":
            table.append((int(parts[0], 16), re.sub(r"::h[0-9a-f]{16}$", "", parts[2])))
    return table


def exits(trace, vectors):
    """The exits in the trace: tuples of PCs, each from a vector entry."""
    pc_field = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")
    path = None
    with open(trace) as log:
        for line in log:
            match = pc_field.search(line)
            if not match:
                continue
            pc = int(match.group(1), 16)
            if vectors <= pc < vectors + 0x20:
                if path:
                    yield tuple(path)
                path = []
            if path is not None:
                path.append(pc)
    if path:
        yield tuple(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("elf")
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--path", type=int, metavar="LENGTH")
    args = parser.parse_args()
    table = symbols(args.elf)
    addresses = [address for address, _ in table]
    vectors = next((a for a, name in table if name == "hyp_vectors"), None)
    if vectors is None:
        sys.exit(f"exit-profile: no hyp_vectors symbol in {args.elf}")

    def function(pc):
        return table[bisect.bisect_right(addresses, pc) - 1][1]

    paths = collections.Counter(exits(args.trace, vectors))
    print(f"{sum(paths.values())} exits, {len(paths)} distinct paths")
    for path, count in paths.most_common(args.top):
        print(f"--- {count} x {len(path)} instructions")
        per_function = collections.Counter()
        order = []
        for pc in path:
            name = function(pc)
            if name not in per_function:
                order.append(name)
            per_function[name] += 1
        for name in order:
            print(f"  {per_function[name]:5d}  {name[:140]}")
    if args.path is None:
        return
    chosen = [path for path, _ in paths.most_common() if len(path) == args.path]
    if not chosen:
        sys.exit(f"exit-profile: no path of {args.path} instructions")
    path = chosen[0]
    located = subprocess.run(
        ["llvm-addr2line", "-f", "-i", "-C", "-a", "-e", args.elf] + [hex(pc) for pc in set(path)],
        capture_output=True, text=True, check=True).stdout.splitlines()
    where = {}
    current = None
    index = 0
    while index < len(located):
        line = located[index]
        if line.startswith("0x"):
            current = int(line, 16)
            index += 1
            continue
        if current not in where:
            source = located[index + 1] if index + 1 < len(located) else "?"
            where[current] = (re.sub(r"<.*>", "", line), source.split("/")[-1])
        index += 2
    disassembly = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", args.elf],
                                 capture_output=True, text=True, check=True).stdout
    instructions = {}
    for line in disassembly.splitlines():
        match = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if match:
            instructions[int(match.group(1), 16)] = match.group(2).split("@")[0].strip()
    print(f"--- the path of {args.path} instructions")
    for pc in path:
        name, source = where.get(pc, ("?", "?"))
        print(f"{pc:08x}  {instructions.get(pc, '?')[:36]:36s}  {name[:70]:70s}  {source}")


if __name__ == "__main__":
    main()
