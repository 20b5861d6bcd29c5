//! Envelope and handler throughput, each printed as a ratio against a peer measured in the
//! same run: `ring`'s AES-256-GCM for the envelope, the bare envelope for the handler. Ours and
//! the peer are sampled in turn, so that load from elsewhere on the machine hits both alike.
//!
//! `cargo bench -p ssm-crypto --bench crypto` (or `bash bench/crypto.sh`, which also has the
//! figures written to `$SSM_BENCH_OUT/crypto.json` for `bench/report.py`).

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ssm_core::api::Limits;
use ssm_core::envelope::{self, Envelope, KeyVersion};
use ssm_core::keyring::Keyring;
use ssm_core::secret::KeyMaterial;
use ssm_crypto::Service;
use ssm_crypto::lambda::HttpApiEvent;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

/// `SSM_BENCH_ITERS=N` and `SSM_BENCH_ONLY=<label>` run only the measurement named `label`
/// (e.g. `seal 64 B`, `ring open 1 KiB`, `handler`, `bare seal`, `event`, `service`), exactly N
/// times and untimed, so that `valgrind --tool=callgrind` counts the instructions of N calls
/// whatever the load on the machine (subtract a run with N=0 for the setup). Returns whether
/// that mode is on (and so the timed measurement is skipped).
fn counted_run(label: &str, f: &mut impl FnMut()) -> bool {
    let Some(iters) = std::env::var("SSM_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    if std::env::var("SSM_BENCH_ONLY").is_ok_and(|only| only == label) {
        for _ in 0..iters {
            f();
        }
    }
    true
}

/// Iterations that take at least 30 ms.
fn calibrate(f: &mut impl FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() >= Duration::from_millis(30) {
            return iters;
        }
        iters *= 2;
    }
}

fn sample(f: &mut impl FnMut(), iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median ns per call over 11 samples of at least 30 ms each.
fn measure(label: &str, mut f: impl FnMut()) -> f64 {
    if counted_run(label, &mut f) {
        return f64::NAN;
    }
    let iters = calibrate(&mut f);
    median((0..11).map(|_| sample(&mut f, iters)).collect())
}

/// Median ns per call of `ours` and of its `peer`, their 11 samples (at least 30 ms each) taken
/// in turn, so that on a shared machine both see the same load and the ratio stays fair.
fn measure_pair(
    (label, mut ours): (&str, impl FnMut()),
    (peer_label, mut peer): (&str, impl FnMut()),
) -> (f64, f64) {
    if counted_run(label, &mut ours) | counted_run(peer_label, &mut peer) {
        return (f64::NAN, f64::NAN);
    }
    let (ours_iters, peer_iters) = (calibrate(&mut ours), calibrate(&mut peer));
    let (ours_samples, peer_samples) = (0..11)
        .map(|_| (sample(&mut ours, ours_iters), sample(&mut peer, peer_iters)))
        .unzip();
    (median(ours_samples), median(peer_samples))
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let key_bytes = [0x42u8; 32];
    let key = KeyMaterial::from_bytes(key_bytes);
    let version = KeyVersion::FIRST;
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("ring key"));
    let mut record = serde_json::Map::new();

    if wants("envelope") {
        println!("envelope vs ring AES-256-GCM (ns/op, median; ratio = ours / ring)");
        println!(
            "{:<10} {:>14} {:>14} {:>8} {:>14} {:>14} {:>8}",
            "size", "seal", "ring seal", "ratio", "open", "ring open", "ratio"
        );
        let mut rows = Vec::new();
        for size in [64usize, 1024, 64 * 1024, 1024 * 1024] {
            let plaintext = vec![7u8; size];
            let sealed = envelope::seal(&key, version, &plaintext, b"ctx").expect("seal");
            let seal = || {
                black_box(
                    envelope::seal(&key, version, black_box(&plaintext), b"ctx").expect("seal"),
                );
            };
            let ring_seal = || {
                let mut nonce = [0u8; 12];
                ssm_core::secret::fill_random(&mut nonce).expect("rng");
                let mut buf = black_box(&plaintext).clone();
                ring_key
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(b"ssm:v1:ctx"),
                        &mut buf,
                    )
                    .expect("ring seal");
                black_box(STANDARD.encode(&buf));
            };
            let (seal_ns, ring_seal_ns) = measure_pair(
                (&format!("seal {}", human(size)), seal),
                (&format!("ring seal {}", human(size)), ring_seal),
            );
            let open = || {
                let env = Envelope::parse(black_box(&sealed)).expect("parse");
                black_box(env.open(&key, b"ctx").expect("open"));
            };
            let ring_sealed = {
                let mut buf = plaintext.clone();
                let tag = ring_key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([1; 12]),
                        Aad::from(b"ssm:v1:ctx"),
                        &mut buf,
                    )
                    .expect("seal");
                buf.extend_from_slice(tag.as_ref());
                STANDARD.encode(&buf)
            };
            let ring_open = || {
                let mut buf = STANDARD.decode(black_box(&ring_sealed)).expect("b64");
                black_box(
                    ring_key
                        .open_in_place(
                            Nonce::assume_unique_for_key([1; 12]),
                            Aad::from(b"ssm:v1:ctx"),
                            &mut buf,
                        )
                        .expect("open")
                        .len(),
                );
            };
            let (open_ns, ring_open_ns) = measure_pair(
                (&format!("open {}", human(size)), open),
                (&format!("ring open {}", human(size)), ring_open),
            );
            println!(
                "{:<10} {:>14.0} {:>14.0} {:>8.2} {:>14.0} {:>14.0} {:>8.2}",
                human(size),
                seal_ns,
                ring_seal_ns,
                seal_ns / ring_seal_ns,
                open_ns,
                ring_open_ns,
                open_ns / ring_open_ns
            );
            rows.push(serde_json::json!({
                "bytes": size, "seal_ns": seal_ns, "ring_seal_ns": ring_seal_ns,
                "open_ns": open_ns, "ring_open_ns": ring_open_ns,
            }));
        }
        record.insert("envelope".into(), rows.into());
    }

    if wants("handler") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keyring.json");
        let ring = Keyring::generate(chrono::Utc::now()).expect("keyring");
        std::fs::write(&path, ring.to_json().as_bytes()).expect("write");
        let cache = Arc::new(KeyringCache::new(
            KeySource::File(path),
            CachePolicy::default(),
        ));
        let service = Service::new(cache, Limits::default());
        let plaintext = vec![7u8; 1024];
        let body = serde_json::json!({ "plaintext": STANDARD.encode(&plaintext) }).to_string();
        let event = include_str!("../tests/fixtures/apigw-v2-encrypt.json")
            .replace("__BODY__", &body.replace('"', "\\\""));
        runtime.block_on(service.keyring().get()).expect("load");
        // What lambda_runtime does per invocation: event bytes in, response bytes out.
        let handler = || {
            let request: HttpApiEvent = serde_json::from_str(black_box(&event)).expect("event");
            let response = runtime.block_on(ssm_crypto::lambda::handle(&service, request));
            assert_eq!(response.status_code, 200);
            black_box(serde_json::to_vec(&response).expect("response"));
        };
        let bare = || {
            black_box(envelope::seal(&key, version, black_box(&plaintext), b"").expect("seal"));
        };
        let (handler_ns, bare_ns) = measure_pair(("handler", handler), ("bare seal", bare));
        // Where the overhead goes: the runtime's event parsing, and our service alone.
        let event_ns = measure("event", || {
            black_box(serde_json::from_str::<HttpApiEvent>(black_box(&event)).expect("event"));
        });
        let service_ns = measure("service", || {
            let response = runtime.block_on(service.handle(
                "POST",
                "/v1/encrypt",
                black_box(body.as_bytes()),
                Some("arn:aws:iam::123456789012:role/caller"),
            ));
            black_box(response);
        });
        println!("\nhandler end to end, 1 KiB encrypt (API Gateway v2 event in -> response out)");
        println!(
            "handler {handler_ns:.0} ns/op, bare envelope seal {bare_ns:.0} ns/op, ratio {:.2}, overhead {:.0} ns/op",
            handler_ns / bare_ns,
            handler_ns - bare_ns
        );
        println!(
            "  of which: event parsing {event_ns:.0} ns/op; service (body in -> JSON out) {service_ns:.0} ns/op, {:.0} ns/op over the bare seal",
            service_ns - bare_ns
        );
        record.insert(
            "handler_1kib".into(),
            serde_json::json!({
                "handler_ns": handler_ns, "bare_seal_ns": bare_ns,
                "event_parse_ns": event_ns, "service_ns": service_ns,
            }),
        );
    }
    if let Some(dir) = std::env::var_os("SSM_BENCH_OUT") {
        let path = std::path::Path::new(&dir).join("crypto.json");
        std::fs::create_dir_all(&dir).expect("bench output directory");
        let json = serde_json::to_vec_pretty(&record).expect("json");
        std::fs::write(&path, json).expect("write the bench record");
    }
}

fn human(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}
