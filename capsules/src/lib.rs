//! Capsules: virtual devices and hypercall services, in safe Rust.
#![no_std]
#![forbid(unsafe_code)]
