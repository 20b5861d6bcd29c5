//! Fuzz targets for ssm-core's parsers and checks.
//!
//! Each target takes raw bytes, drives one stable entry point of `ssm-core` and asserts the
//! properties it promises (round trips, no forged accepts, 4xx on bad input, determinism); a
//! panic is a finding. The same functions run three ways:
//!
//! - `cargo test -p ssm-fuzz`: every committed corpus file (`fuzz/corpus/<target>/`) plus a few
//!   thousand deterministic mutations of them, as a regression test;
//! - `bench/fuzz.sh` and `scripts/ci.d/25-fuzz.sh`: coverage-guided AFL++ through `cargo afl`
//!   (stable toolchain, rustc's own SanitizerCoverage passes) on the `ssm-fuzz-afl` binary;
//! - `ssm-fuzz-afl <target> < file`: one input, to reproduce a crash outside AFL.

mod api;
mod broker;
mod classify;
mod envelope;
mod envelope2;
mod input;
mod keyring;
mod mac;
mod manifest;
mod webhook;

/// One fuzz target: a name (its corpus directory) and the function that checks one input.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the scripts run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        run: envelope::run,
    },
    Target {
        name: "envelope2",
        run: envelope2::run,
    },
    Target {
        name: "mac",
        run: mac::run,
    },
    Target {
        name: "keyring",
        run: keyring::run,
    },
    Target {
        name: "api_request",
        run: api::run,
    },
    Target {
        name: "webhook",
        run: webhook::run,
    },
    Target {
        name: "broker_identity",
        run: broker::run,
    },
    Target {
        name: "cloudtrail_classify",
        run: classify::run,
    },
    Target {
        name: "assembly_manifest",
        run: manifest::run,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
