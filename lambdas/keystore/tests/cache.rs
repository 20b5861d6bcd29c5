//! The cache's TTL, early refresh, rate limit, single flight and stale-on-failure, on a file.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ssm_core::keyring::Keyring;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache, write_keyring_file};

fn policy() -> CachePolicy {
    CachePolicy {
        ttl: Duration::from_secs(300),
        min_refresh_interval: Duration::from_secs(5),
    }
}

async fn setup() -> (tempfile::TempDir, std::path::PathBuf, Keyring) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keyring.json");
    let ring = Keyring::generate(Utc::now()).expect("keyring");
    write_keyring_file(&path, &ring).await.expect("write");
    (dir, path, ring)
}

#[tokio::test(start_paused = true)]
async fn ttl_then_reload() {
    let (_dir, path, mut ring) = setup().await;
    let cache = KeyringCache::new(KeySource::File(path.clone()), policy());
    assert_eq!(cache.get().await.unwrap().latest().unwrap().get(), 1);
    ring.rotate(Utc::now()).unwrap();
    write_keyring_file(&path, &ring).await.unwrap();
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(
        cache.get().await.unwrap().latest().unwrap().get(),
        1,
        "still within TTL"
    );
    assert_eq!(cache.loads(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        cache.get().await.unwrap().latest().unwrap().get(),
        2,
        "reloaded after TTL"
    );
    assert_eq!(cache.loads(), 2);
}

#[tokio::test(start_paused = true)]
async fn newer_version_refreshes_early_but_rate_limited() {
    let (_dir, path, mut ring) = setup().await;
    let cache = KeyringCache::new(KeySource::File(path.clone()), policy());
    cache.get().await.unwrap();
    ring.rotate(Utc::now()).unwrap();
    let v2_ciphertext = ring.encrypt(b"new", b"").unwrap();
    write_keyring_file(&path, &ring).await.unwrap();

    let named = Keyring::named_version(&v2_ciphertext.ciphertext);
    // The first load was just now: within the rate-limit interval, no reload yet.
    let same = cache.get_knowing(named).await.unwrap();
    assert_eq!(same.latest().unwrap().get(), 1);
    tokio::time::advance(Duration::from_secs(6)).await;
    let fresh = cache.get_knowing(named).await.unwrap();
    assert_eq!(fresh.latest().unwrap().get(), 2);
    assert_eq!(
        fresh
            .decrypt(&v2_ciphertext.ciphertext, b"")
            .unwrap()
            .0
            .expose(),
        b"new"
    );
    assert_eq!(cache.loads(), 2);

    // A bogus far-future version reloads at most once per interval.
    let bogus = ssm_core::envelope::KeyVersion::new(999);
    for _ in 0..50 {
        cache.get_knowing(bogus).await.unwrap();
    }
    assert_eq!(cache.loads(), 2, "within 5 s of the last load");
    tokio::time::advance(Duration::from_secs(6)).await;
    for _ in 0..50 {
        cache.get_knowing(bogus).await.unwrap();
    }
    assert_eq!(cache.loads(), 3);
}

#[tokio::test(start_paused = true)]
async fn concurrent_first_requests_load_once() {
    let (_dir, path, _ring) = setup().await;
    let cache = Arc::new(KeyringCache::new(KeySource::File(path), policy()));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await.map(|r| r.latest()) })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    assert_eq!(cache.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_reload_serves_last_good_copy_and_retries_later() {
    let (_dir, path, _ring) = setup().await;
    let cache = KeyringCache::new(KeySource::File(path.clone()), policy());
    cache.get().await.unwrap();
    std::fs::write(&path, "{ broken").unwrap();
    tokio::time::advance(Duration::from_secs(301)).await;
    assert!(cache.get().await.is_ok(), "stale copy served");
    assert_eq!(cache.loads(), 2);
    assert!(cache.get().await.is_ok());
    assert_eq!(cache.loads(), 2, "no reload storm while broken");
    tokio::time::advance(Duration::from_secs(6)).await;
    cache.get().await.unwrap();
    assert_eq!(cache.loads(), 3, "retried after the interval");
}

#[tokio::test]
async fn missing_or_malformed_source_is_an_error_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let missing = KeyringCache::new(KeySource::File(dir.path().join("nope.json")), policy());
    assert!(missing.get().await.is_err());
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"keys": [], "primary_version": 3}"#).unwrap();
    let bad = KeyringCache::new(KeySource::File(path), policy());
    let err = bad.get().await.unwrap_err().to_string();
    assert!(err.contains("primary_version 3"), "{err}");
}

#[tokio::test]
async fn dev_keyring_is_created_once_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev/keyring.json");
    assert!(ssm_keystore::ensure_dev_keyring(&path).await.unwrap());
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(!ssm_keystore::ensure_dev_keyring(&path).await.unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "keyring file must not be group/world readable"
        );
    }
    assert!(Keyring::from_json(&first).unwrap().is_initialised());
}
