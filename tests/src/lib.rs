//! Shared helpers for the QEMU integration tests in `tests/`.
