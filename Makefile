# Capvisor's front end. On a fresh machine:
#   make program   build the default board and run it in QEMU (Ctrl-A x quits):
#                  Linux with a shell on the console, and a second small VM
#                  (make program KERNEL=zImage INITRD=file BOOTARGS="..."
#                  boots your own kernel instead)
#   make test      formatting, lints, host unit tests and QEMU integration tests
# Both run `make setup` first, which installs what is missing and nothing else.

BOARD ?= integrator-cp
TARGET := armv7a-none-eabi
# Crates that run on the host (unit tests) and those built for the target.
UNIT_CRATES := -p hyp -p armv7a -p integrator-cp -p capsules -p capvisor-runner
HOST_CRATES := $(UNIT_CRATES) -p capvisor-tests
TARGET_CRATES := -p hyp -p armv7a -p integrator-cp -p capsules -p capvisor-integrator-cp -p capvisor-test-guests

.PHONY: all setup program debug build test fmt-check lint unit-test qemu-test bench clean

all: build

setup:
	@tools/setup.sh

# KERNEL, INITRD and BOOTARGS (see boards/$(BOARD)/Makefile) reach the board
# with paths made absolute here, where the user typed them.
BOARD_VARS := $(if $(KERNEL),KERNEL=$(abspath $(KERNEL))) $(if $(INITRD),INITRD=$(abspath $(INITRD)))

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
	for features in test-guests test-fault-policy test-interrupts test-scheduling test-console test-hello linux bench test-fault-unmapped test-panic test-uncovered-layout; do \
		cargo clippy --locked -p capvisor-integrator-cp --target $(TARGET) --features $$features -- -D warnings || exit 1; \
	done

unit-test: setup
	cargo test --locked $(UNIT_CRATES)
	cargo test --locked -p capvisor-tests --lib

qemu-test: setup
	cargo test --locked -p capvisor-tests --test '*'

test: setup fmt-check lint unit-test qemu-test
	@echo "make test: all checks passed"

# Trap-path micro-benchmarks in exact instruction counts (QEMU -icount),
# run by the bench guest; writes BENCHMARKS.md.
BENCH_DIR := target/bench
BENCH_ELF := $(BENCH_DIR)/$(TARGET)/release/capvisor-integrator-cp
GUEST_DIR := target/$(TARGET)/release
RUNNER := cargo run --quiet --locked --release -p capvisor-runner --bin capvisor-run --
bench: setup
	cargo build --locked --release -p capvisor-test-guests --target $(TARGET)
	cargo build --locked --release -p capvisor-integrator-cp --target $(TARGET) --features bench --target-dir $(BENCH_DIR)
	$(RUNNER) --board integrator-cp --kernel $(BENCH_ELF) --guest-images $(GUEST_DIR) --icount --timeout 300 \
		--expect "bench: done" 2> $(BENCH_DIR)/console.txt \
		|| (cat $(BENCH_DIR)/console.txt; exit 1)
	tools/bench-report.sh $(BENCH_DIR)/console.txt > BENCHMARKS.md
	@cat BENCHMARKS.md

clean:
	cargo clean
