//! Envelope and handler throughput, each printed as a ratio against a peer measured in the
//! same run: `ring`'s AES-256-GCM for the envelope, the bare envelope for the handler.
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

/// Median ns per call over 11 samples of at least 30 ms each.
///
/// With `SSM_BENCH_ITERS=N` and `SSM_BENCH_ONLY=<label>`, runs only the measurement named
/// `label` (e.g. `seal 64 B`, `ring open 1 KiB`, `handler`, `bare seal`, `event`, `service`),
/// exactly N times and untimed, so that `valgrind --tool=callgrind` counts the instructions of
/// N calls whatever the load on the machine (subtract a run with N=0 for the setup).
fn measure(label: &str, mut f: impl FnMut()) -> f64 {
    if let Some(iters) = std::env::var("SSM_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        if std::env::var("SSM_BENCH_ONLY").is_ok_and(|only| only == label) {
            for _ in 0..iters {
                f();
            }
        }
        return f64::NAN;
    }
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() >= Duration::from_millis(30) {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..11)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
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
            let seal_ns = measure(&format!("seal {}", human(size)), || {
                black_box(
                    envelope::seal(&key, version, black_box(&plaintext), b"ctx").expect("seal"),
                );
            });
            let ring_seal_ns = measure(&format!("ring seal {}", human(size)), || {
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
            });
            let open_ns = measure(&format!("open {}", human(size)), || {
                let env = Envelope::parse(black_box(&sealed)).expect("parse");
                black_box(env.open(&key, b"ctx").expect("open"));
            });
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
            let ring_open_ns = measure(&format!("ring open {}", human(size)), || {
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
            });
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
        let handler_ns = measure("handler", || {
            let request: HttpApiEvent = serde_json::from_str(black_box(&event)).expect("event");
            let response = runtime.block_on(ssm_crypto::lambda::handle(&service, request));
            assert_eq!(response.status_code, 200);
            black_box(serde_json::to_vec(&response).expect("response"));
        });
        let bare_ns = measure("bare seal", || {
            black_box(envelope::seal(&key, version, black_box(&plaintext), b"").expect("seal"));
        });
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
