# SPDX-License-Identifier: MIT OR Apache-2.0
# Capvisor's front end. On a fresh machine:
#   make program   build the default board and run it in QEMU (Ctrl-A x quits):
#                  Linux with a shell on the console, and a second small VM
#                  (systems/demo.toml); SYSTEM=file.toml runs another system
#                  description, and KERNEL=zImage INITRD=file BOOTARGS="..."
#                  one Linux VM with your own kernel; BOARD=qemu-virt the
#                  other board
#   make test      formatting, lints, host unit tests and QEMU integration tests
# Both run `make setup` first, which installs what is missing and nothing else.

BOARD ?= integrator-cp
TARGET := armv7a-none-eabi
# Crates that run on the host (unit tests) and those built for the target.
UNIT_CRATES := -p hyp -p armv7a -p integrator-cp -p pl011 -p pl031 -p pl181 -p gicv2 -p qemu-virt -p capsules -p components -p capvisor-runner -p capvisor-system
HOST_CRATES := $(UNIT_CRATES) -p capvisor-tests
TARGET_CRATES := -p hyp -p armv7a -p integrator-cp -p pl011 -p pl031 -p pl181 -p gicv2 -p qemu-virt -p capsules -p components -p capvisor-integrator-cp -p capvisor-qemu-virt -p capvisor-test-guests

.PHONY: all setup program debug build test fmt-check lint unit-test qemu-test bench exit-profile soak fuzz clean

all: build

setup:
	@tools/setup.sh

# SYSTEM, KERNEL, INITRD, BOOTARGS and DISK (see boards/Makefile.common)
# reach the board with paths made absolute here, where the user typed them.
BOARD_VARS := $(if $(SYSTEM),SYSTEM=$(abspath $(SYSTEM))) $(if $(KERNEL),KERNEL=$(abspath $(KERNEL))) $(if $(INITRD),INITRD=$(abspath $(INITRD))) $(if $(DISK),DISK=$(abspath $(DISK)))

build: setup
	$(MAKE) -C boards/$(BOARD) build $(BOARD_VARS)

program: setup
	$(MAKE) -C boards/$(BOARD) program $(BOARD_VARS)

debug: setup
	$(MAKE) -C boards/$(BOARD) debug $(BOARD_VARS)

fmt-check:
	cargo fmt --all --check

lint: setup
	cargo clippy --locked $(HOST_CRATES) --all-targets -- -D warnings
	cargo clippy --locked $(TARGET_CRATES) --target $(TARGET) -- -D warnings
	for features in bench test-fault-unmapped test-panic test-uncovered-layout test-board-disk; do \
		cargo clippy --locked -p capvisor-integrator-cp -p capvisor-qemu-virt --target $(TARGET) --features $$features -- -D warnings || exit 1; \
	done

unit-test: setup
	cargo test --locked $(UNIT_CRATES)
	cargo test --locked -p capvisor-tests --lib
	# The kernel's SMP protocols (restart, park, power, kicks) under the
	# loom model checker, every interleaving of two CPUs; its own target
	# directory, so the normal builds are not redone.
	RUSTFLAGS="--cfg loom" cargo test --locked -p hyp --release --lib --target-dir target/loom loom

qemu-test: setup
	cargo test --locked -p capvisor-tests --test '*' -- --skip a_hostile_guest
	@echo "The hostile-guest suite (its summary follows):"
	cargo test --locked -p capvisor-tests --test hostile -- --nocapture

test: setup fmt-check lint unit-test qemu-test
	@echo "make test: all checks passed"

# Trap-path micro-benchmarks in exact instruction counts (QEMU -icount),
# run by the bench guest on every board, and Linux's boot under Capvisor
# on every board against the same kernel, initramfs and device tree
# natively on QEMU virt (the initramfs powers off at once); then the same
# in wall clock (no -icount): the trap paths in nanoseconds and Linux
# (boot, a shell loop, dd through md5sum, dd on its virtio disk) against
# native, WALL_RUNS alternating rounds, medians. The bench guest also
# times 4 KiB virtio-blk requests, and natively both it and Linux get
# QEMU's own virtio-blk-device. Writes BENCHMARKS.md with the boards side
# by side.
BENCH_BOARDS := integrator-cp qemu-virt
BENCH_DIR := target/bench
GUEST_DIR := target/$(TARGET)/release
RUNNER := cargo run --quiet --locked --release -p capvisor-runner --bin capvisor-run --
LINUX_BENCH_ARGS := console=ttyAMA0 capvisor-bench
LINUX_WALL_ARGS := console=ttyAMA0 capvisor-wall
WALL_RUNS ?= 5
# A virtio-blk disk of QEMU's own on bare QEMU virt, in slot 0 (QEMU
# gives the first -device the last slot, 31, unless told the bus) and
# version 2, as Capvisor's: the bench guest's requests and Linux's /dev/vda.
NATIVE_DISK = -global virtio-mmio.force-legacy=false -drive if=none,id=d0,file=$(1),format=raw -device virtio-blk-device,drive=d0,bus=virtio-mmio-bus.0
NATIVE_BENCH := qemu-system-arm -M virt -cpu cortex-a15 -m 256 -display none -monitor none -serial stdio -no-reboot -kernel target/guests-elf/$(TARGET)/release/bench $(call NATIVE_DISK,$(BENCH_DIR)/native/bench-disk.img)
# The disks (zeros; each run writes before it reads): the bench guest's
# (1 MiB; an image disk under Capvisor, QEMU's own device natively) and
# Linux's for the wall-clock dd runs (128 MiB).
BENCH_DISKS := $(BENCH_DIR)/bench-disk.img $(BENCH_DIR)/native/bench-disk.img
WALL_DISKS := $(BENCH_DIR)/wall-disk.img $(BENCH_DIR)/native/wall-disk.img
$(BENCH_DISKS):
	mkdir -p $(@D)
	truncate -s 1M $@
$(WALL_DISKS):
	mkdir -p $(@D)
	truncate -s 128M $@

bench: setup $(BENCH_DISKS) $(WALL_DISKS)
	cargo build --locked --release -p capvisor-test-guests --target $(TARGET)
	tools/linux-images.sh target/linux
	for board in $(BENCH_BOARDS); do \
		dir=$(BENCH_DIR)/$$board; mkdir -p $$dir; \
		cargo build --locked --release -p capvisor-$$board --target $(TARGET) --features bench --target-dir $$dir/trap || exit 1; \
		$(RUNNER) --board $$board --kernel $$dir/trap/$(TARGET)/release/capvisor-$$board --system tests/systems/bench.toml --search $(GUEST_DIR) --search $(BENCH_DIR) --icount --timeout 300 \
			--expect "bench: done" 2> $$dir/console.txt || { cat $$dir/console.txt; exit 1; }; \
		cargo build --locked --release -p capvisor-$$board --target $(TARGET) --target-dir $$dir/linux || exit 1; \
		$(RUNNER) --board $$board --kernel $$dir/linux/$(TARGET)/release/capvisor-$$board --system tests/systems/linux-bench.toml --search target/linux --icount --timeout 900 \
			--expect "capvisor: VMs: 0 passed, 0 failed, 1 powered off without a status" 2> $$dir/linux-capvisor.txt || { cat $$dir/linux-capvisor.txt; exit 1; }; \
	done
	# The bench guest on bare QEMU virt (its ELF, linked where Capvisor
	# puts it): what exists without a hypervisor.
	CAPVISOR_GUEST_ELF=1 cargo build --locked --release -p capvisor-test-guests --target $(TARGET) --target-dir target/guests-elf --bin bench
	timeout 300 $(NATIVE_BENCH) -icount shift=0 > $(BENCH_DIR)/native/console.txt 2>&1 || { cat $(BENCH_DIR)/native/console.txt; exit 1; }
	# Wall clock (no -icount): the same trap-path runs, WALL_RUNS times
	# per board and natively, alternating; PMCCNTR then counts nanoseconds.
	for run in $$(seq 1 $(WALL_RUNS)); do \
		for board in $(BENCH_BOARDS); do \
			dir=$(BENCH_DIR)/$$board; \
			$(RUNNER) --board $$board --kernel $$dir/trap/$(TARGET)/release/capvisor-$$board --system tests/systems/bench.toml --search $(GUEST_DIR) --search $(BENCH_DIR) --timeout 300 \
				--expect "bench: done" 2> $$dir/wall-trap-$$run.txt || { cat $$dir/wall-trap-$$run.txt; exit 1; }; \
		done; \
		timeout 300 $(NATIVE_BENCH) > $(BENCH_DIR)/native/wall-trap-$$run.txt 2>&1 || { cat $(BENCH_DIR)/native/wall-trap-$$run.txt; exit 1; }; \
	done
	# Linux in wall clock: natively on QEMU virt and under Capvisor on
	# each board, WALL_RUNS alternating rounds (tools/wall-bench.py).
	cargo run --quiet --locked --release -p capvisor-runner --bin capvisor-dtb -- $(BENCH_DIR)/wall.dtb 256 "$(LINUX_WALL_ARGS)"
	set -- "native (QEMU virt)=qemu-system-arm -M virt -cpu cortex-a15 -m 256 -display none -monitor none -serial stdio -no-reboot -kernel target/linux/linux-zImage -initrd target/linux/initrd.cpio.gz -dtb $(BENCH_DIR)/wall.dtb -append '$(LINUX_WALL_ARGS)' $(call NATIVE_DISK,$(BENCH_DIR)/native/wall-disk.img)"; \
	for board in $(BENCH_BOARDS); do \
		dir=$(BENCH_DIR)/$$board; \
		qemu=$$($(RUNNER) --board $$board --kernel $$dir/linux/$(TARGET)/release/capvisor-$$board --system tests/systems/linux-wall.toml --search target/linux --search $(BENCH_DIR) --timeout 600 --print-command) || exit 1; \
		set -- "$$@" "Capvisor on $$board=$$qemu"; \
	done; \
	tools/wall-bench.py --runs $(WALL_RUNS) --disk --out $(BENCH_DIR)/wall-linux.md "$$@"
	cargo run --quiet --locked --release -p capvisor-runner --bin capvisor-dtb -- $(BENCH_DIR)/linux.dtb 256 "$(LINUX_BENCH_ARGS)"
	timeout 900 qemu-system-arm -M virt -cpu cortex-a15 -m 256 -icount shift=0 -display none -monitor none \
		-serial stdio -no-reboot -kernel target/linux/linux-zImage -initrd target/linux/initrd.cpio.gz \
		-dtb $(BENCH_DIR)/linux.dtb -append "$(LINUX_BENCH_ARGS)" < /dev/null > $(BENCH_DIR)/linux-native.txt 2>&1 \
		|| (cat $(BENCH_DIR)/linux-native.txt; exit 1)
	# Several CPUs (qemu-virt): the SMP guest's IPI between two vCPUs on
	# two CPUs under -icount, under Capvisor and on bare QEMU virt -smp 2;
	# Linux with two vCPUs in wall clock against the same kernel on bare
	# QEMU virt -smp 2 (under -icount QEMU runs the CPUs one at a time and
	# a CPU spinning for another's answer stalls both boots for seconds).
	mkdir -p $(BENCH_DIR)/smp
	$(RUNNER) --board qemu-virt --kernel $(BENCH_DIR)/qemu-virt/linux/$(TARGET)/release/capvisor-qemu-virt --system tests/systems/smp-bench.toml --search $(GUEST_DIR) --icount --timeout 300 \
		--expect "smp: 22 checks, 0 failed" 2> $(BENCH_DIR)/smp/ipi-capvisor.txt || { cat $(BENCH_DIR)/smp/ipi-capvisor.txt; exit 1; }
	CAPVISOR_GUEST_ELF=1 cargo build --locked --release -p capvisor-test-guests --target $(TARGET) --target-dir target/guests-elf --bin smp
	timeout 300 qemu-system-arm -M virt -cpu cortex-a15 -smp 2 -m 256 -icount shift=0 -display none -monitor none -serial stdio -no-reboot \
		-kernel target/guests-elf/$(TARGET)/release/smp > $(BENCH_DIR)/smp/ipi-native.txt 2>&1 || { cat $(BENCH_DIR)/smp/ipi-native.txt; exit 1; }
	cargo run --quiet --locked --release -p capvisor-runner --bin capvisor-dtb -- $(BENCH_DIR)/smp/wall.dtb 256 "$(LINUX_WALL_ARGS)" 2
	qemu=$$($(RUNNER) --board qemu-virt --kernel $(BENCH_DIR)/qemu-virt/linux/$(TARGET)/release/capvisor-qemu-virt --system tests/systems/linux-wall-smp.toml --search target/linux --timeout 600 --print-command) || exit 1; \
	tools/wall-bench.py --runs $(WALL_RUNS) --alternate --out $(BENCH_DIR)/smp/wall-linux.md \
		"native (QEMU virt -smp 2)=qemu-system-arm -M virt -cpu cortex-a15 -smp 2 -m 256 -display none -monitor none -serial stdio -no-reboot -kernel target/linux/linux-zImage -initrd target/linux/initrd.cpio.gz -dtb $(BENCH_DIR)/smp/wall.dtb -append '$(LINUX_WALL_ARGS)'" \
		"Capvisor on qemu-virt, 2 vCPUs=$$qemu"
	tools/bench-report.sh $(BENCH_DIR) $(BENCH_BOARDS) > BENCHMARKS.md
	@cat BENCHMARKS.md

# Where each guest exit's instructions go: the bench guest's run under
# -icount with QEMU logging every instruction of the hypervisor's text,
# cut into exits and summed per function by tools/exit-profile.py
# (PROFILE_PATH=N also lists the most common N-instruction path line by
# line). BOARD picks the board.
PROFILE_DIR := target/exit-profile/$(BOARD)
exit-profile: $(BENCH_DIR)/bench-disk.img
	@tools/setup.sh profile
	cargo build --locked --release -p capvisor-test-guests --target $(TARGET)
	cargo build --locked --release -p capvisor-$(BOARD) --target $(TARGET) --features bench --target-dir $(PROFILE_DIR)
	elf=$(PROFILE_DIR)/$(TARGET)/release/capvisor-$(BOARD); \
	set -- $$(llvm-readelf -lW $$elf | awk '$$1 == "LOAD" && $$7 == "R" && $$8 == "E" { print $$3, $$6 }'); \
	text=$$(printf '%s..0x%x' $$1 $$(($$1 + $$2 - 1))); \
	qemu=$$($(RUNNER) --board $(BOARD) --kernel $$elf --system tests/systems/bench.toml --search $(GUEST_DIR) --search $(BENCH_DIR) --icount --timeout 600 --print-command) || exit 1; \
	timeout 900 $$qemu -singlestep -d exec,nochain -dfilter $$text -D $(PROFILE_DIR)/trace.log > $(PROFILE_DIR)/console.txt 2>&1 \
		|| { cat $(PROFILE_DIR)/console.txt; exit 1; }; \
	tools/exit-profile.py $$elf $(PROFILE_DIR)/trace.log $(if $(PROFILE_PATH),--path $(PROFILE_PATH))

# The soak (not part of make test): Linux with a shell workload beside a
# hostile guest, console input typed throughout, SOAK_SECONDS per board
# (default 600), one board after the other; prints the figures (kept in
# target/soak.txt, which make bench puts in BENCHMARKS.md).
SOAK_SECONDS ?= 600
soak: setup
	mkdir -p target
	bash -c 'set -o pipefail; CAPVISOR_SOAK_SECONDS=$(SOAK_SECONDS) cargo test --locked -p capvisor-tests --test soak -- --ignored --nocapture --test-threads 1 2>&1 | tee target/soak.txt'

# Fuzzing (cargo fuzz, libFuzzer) of trap decoding, the virtual devices'
# MMIO, hypercalls, VM tables, packed system images and device trees:
# FUZZ_TIME seconds per
# target. Needs a nightly toolchain and cargo-fuzz; installs them if missing.
FUZZ_TIME ?= 60
FUZZ_TARGETS := trap_decode virtual_devices hypercalls vm_config system_image device_tree virtio_blk
fuzz: setup
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	# A real packed system image seeds the system_image target (the first
	# byte 1: the target makes the checksum right), so the fuzzer starts
	# past the header checks.
	cargo build --locked --release -p capvisor-test-guests --target $(TARGET)
	mkdir -p fuzz/corpus/system_image
	cargo run --quiet --locked --release -p capvisor-system -- pack --board qemu-virt --search $(GUEST_DIR) tests/systems/hello.toml --output target/fuzz-seed.img
	{ printf '\001'; cat target/fuzz-seed.img; } > fuzz/corpus/system_image/seed-hello
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_TIME) || exit 1; \
	done

clean:
	cargo clean
