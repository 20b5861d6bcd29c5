//! Shared test setup: a service on a temporary keyring file, and a log capture.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ssm_core::api::Limits;
use ssm_core::keyring::Keyring;
use ssm_crypto::Service;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

pub struct TestService {
    pub service: Arc<Service>,
    pub keyring: Keyring,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn service_with(keyring: Keyring, limits: Limits) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.json");
    std::fs::write(&path, keyring.to_json().as_bytes()).expect("write keyring");
    let cache = Arc::new(KeyringCache::new(
        KeySource::File(path.clone()),
        CachePolicy::default(),
    ));
    TestService {
        service: Arc::new(Service::new(cache, limits)),
        keyring,
        path,
        _dir: dir,
    }
}

pub fn service() -> TestService {
    service_with(
        Keyring::generate(chrono::Utc::now()).expect("keyring"),
        Limits::default(),
    )
}

/// Captures everything logged on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf8 logs")
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
