//! Shared test setup: a service on a temporary keyring file.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;
use std::sync::Arc;

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
