//! Against the Secrets Manager emulator: the keyring is read from AWSCURRENT, old ciphertexts
//! keep decrypting after a new secret version is put, and an unknown version triggers a refresh.

use std::time::Duration;

use chrono::Utc;
use ssm_core::keyring::Keyring;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

/// A secret created in moto with `value`, and its client; `None` when the test skips.
async fn moto_secret(
    test: &str,
    name: &str,
    value: &str,
) -> Option<(aws_sdk_secretsmanager::Client, String)> {
    let endpoint = ssm_testkit::moto_endpoint(test)?;
    let config = ssm_testkit::aws_config(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = format!("{name}-{}", std::process::id());
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(value)
        .send()
        .await
        .expect("moto creates the secret");
    Some((client, secret_id))
}

/// Puts `value` as the secret's new AWSCURRENT.
async fn put_current(client: &aws_sdk_secretsmanager::Client, secret_id: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(value)
        .send()
        .await
        .expect("moto puts the value");
}

#[tokio::test]
async fn reads_awscurrent_and_refreshes_on_newer_version() {
    let mut ring = Keyring::generate(Utc::now()).unwrap();
    let Some((client, secret_id)) = moto_secret(
        "keystore::reads_awscurrent",
        "ssm-keystore-test",
        ring.to_json().as_str(),
    )
    .await
    else {
        return;
    };
    let v1 = ring.encrypt(b"first", b"ctx").unwrap();

    let cache = KeyringCache::new(
        KeySource::SecretsManager {
            client: client.clone(),
            secret_id: secret_id.clone(),
        },
        CachePolicy {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::from_millis(0),
        },
    );
    assert_eq!(cache.get().await.unwrap().latest().unwrap().get(), 1);

    // A pending (not current) version must not be picked up.
    let mut pending = ring.clone();
    pending.rotate(Utc::now()).unwrap();
    client
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(pending.to_json().as_str())
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();

    // Rotate: put a new AWSCURRENT with versions 1 and 2.
    ring.rotate(Utc::now()).unwrap();
    let v2 = ring.encrypt(b"second", b"").unwrap();
    client
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(ring.to_json().as_str())
        .send()
        .await
        .unwrap();

    let cached = cache.get().await.unwrap();
    assert_eq!(
        cached.latest().unwrap().get(),
        1,
        "TTL not passed: still the cached copy"
    );
    let refreshed = cache
        .get_knowing(Keyring::named_version(&v2.ciphertext))
        .await
        .unwrap();
    assert_eq!(refreshed.latest().unwrap().get(), 2);
    assert_eq!(refreshed.primary().unwrap().get(), 2);
    assert_eq!(
        refreshed.decrypt(&v2.ciphertext, b"").unwrap().0.expose(),
        b"second"
    );
    assert_eq!(
        refreshed
            .decrypt(&v1.ciphertext, b"ctx")
            .unwrap()
            .0
            .expose(),
        b"first"
    );
    assert_eq!(cache.loads(), 2);

    let missing = KeySource::SecretsManager {
        client,
        secret_id: "no-such-secret".into(),
    };
    let err = missing.load().await.unwrap_err().to_string();
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

/// The Lambda client reads what Lambda sets and nothing else: the emulator's endpoint through
/// `AWS_ENDPOINT_URL`, the service-specific variable first, credentials and region required.
#[tokio::test]
async fn the_lambda_client_is_configured_from_lambdas_environment_only() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("keystore::lambda_client") else {
        return;
    };
    let secret_id = format!("ssm-keystore-lambda-{}", std::process::id());
    let ring = Keyring::generate(Utc::now()).unwrap();
    let config = ssm_testkit::aws_config(&endpoint).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&secret_id)
        .secret_string(ring.to_json().as_str())
        .send()
        .await
        .unwrap();

    let lambda_env = |overrides: &[(&str, Option<&str>)]| {
        let mut env: std::collections::HashMap<String, String> = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in overrides {
            match v {
                Some(v) => env.insert((*k).to_owned(), (*v).to_owned()),
                None => env.remove(*k),
            };
        }
        move |name: &str| env.get(name).cloned()
    };
    let read = |client: aws_sdk_secretsmanager::Client| {
        let secret_id = secret_id.clone();
        async move {
            client
                .get_secret_value()
                .secret_id(secret_id)
                .send()
                .await
                .map(|o| o.secret_string().map(str::to_owned))
        }
    };

    let client = ssm_keystore::lambda_secrets_client_from(lambda_env(&[])).unwrap();
    assert_eq!(
        read(client).await.unwrap().as_deref(),
        Some(ring.to_json().as_str())
    );
    // The service-specific endpoint wins over the global one.
    let client = ssm_keystore::lambda_secrets_client_from(lambda_env(&[
        ("AWS_ENDPOINT_URL", Some("http://127.0.0.1:9")),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", Some(endpoint.as_str())),
    ]))
    .unwrap();
    assert!(read(client).await.is_ok());
    // A dead endpoint fails: the variable really is where requests go.
    let client = ssm_keystore::lambda_secrets_client_from(lambda_env(&[(
        "AWS_ENDPOINT_URL",
        Some("http://127.0.0.1:9"),
    )]))
    .unwrap();
    assert!(read(client).await.is_err(), "the endpoint variable is used");

    let no_region =
        ssm_keystore::lambda_secrets_client_from(lambda_env(&[("AWS_REGION", None)])).unwrap_err();
    assert!(no_region.contains("no AWS region"), "{no_region}");
    let no_creds =
        ssm_keystore::lambda_secrets_client_from(lambda_env(&[("AWS_SECRET_ACCESS_KEY", None)]))
            .unwrap_err();
    assert!(no_creds.contains("no credentials"), "{no_creds}");
    assert!(
        !no_creds.contains("testing"),
        "no value is quoted: {no_creds}"
    );
}

#[tokio::test]
async fn a_keyring_put_back_to_its_uninitialised_form_is_served_from_awsprevious() {
    let uninitialised = r#"{"lineage": "reset-test-lineage-0123456789"}"#;
    // A new install: nothing but the uninitialised form, and that is what is served.
    let Some((client, secret_id)) = moto_secret(
        "keystore::uninitialised_over_keys",
        "ssm-keystore-reset",
        uninitialised,
    )
    .await
    else {
        return;
    };
    let source = KeySource::SecretsManager {
        client: client.clone(),
        secret_id: secret_id.clone(),
    };
    assert!(!source.load().await.unwrap().holds_keys());

    // Keys arrive (rotation), a ciphertext is made, then the value is regenerated over them.
    let ring = Keyring::generate(Utc::now()).unwrap();
    put_current(&client, &secret_id, ring.to_json().as_str()).await;
    let sealed = ring.encrypt(b"kept", b"ctx").unwrap();
    put_current(&client, &secret_id, uninitialised).await;

    let served = source.load().await.unwrap();
    assert!(served.holds_keys(), "the keys of AWSPREVIOUS are served");
    assert_eq!(
        served
            .decrypt(&sealed.ciphertext, b"ctx")
            .unwrap()
            .0
            .expose(),
        b"kept"
    );

    // A current keyring with keys always wins over AWSPREVIOUS.
    let newer = Keyring::generate(Utc::now()).unwrap();
    put_current(&client, &secret_id, newer.to_json().as_str()).await;
    let served = source.load().await.unwrap();
    assert!(served.decrypt(&sealed.ciphertext, b"ctx").is_err());
}
