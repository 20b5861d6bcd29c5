//! A stand-in for the deployed Crypto API, in process: it checks each request's SigV4 signature
//! with its own canonical-request code (not aws-sigv4's) against known static credentials and
//! answers as API Gateway does when it is wrong; it plays the IAM authorizer (403 for the keys
//! a test denies) and the gateway's route table (404 for keys it does not have); and it mimics
//! the Lambda's bodies, with a reversible fake in place of the cryptography. Tests can queue
//! answers to give before the real ones (503, 429, 400...), and it answers CloudFormation's
//! DescribeStacks for the `--stack` lookup.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const ACCESS_KEY: &str = "AKIDSSMCLIENTTEST";
pub const SECRET_KEY: &str = "s3cr3t/KEY+only-the-test-knows";
pub const SESSION_TOKEN: &str = "session-token-that-must-not-be-logged";
pub const REGION: &str = "eu-west-1";

/// The test's credentials (with `secret` as the secret key, to sign wrongly on purpose).
pub fn credentials(secret: &str) -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new(
            ACCESS_KEY,
            secret,
            Some(SESSION_TOKEN.to_owned()),
            None,
            "test",
        ),
    )
}

/// Gives `command` the test's credentials in the environment and nothing else of the
/// machine's AWS set-up (no files, no instance metadata), with `home` as its home.
pub fn test_credentials_only(command: &mut tokio::process::Command, home: &std::path::Path) {
    command
        .env_clear()
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Writes `input` to a child's stdin and closes it. A child that refuses its arguments may exit
/// before reading: the closed pipe is then its answer, not the test's failure.
pub async fn write_stdin(mut stdin: tokio::process::ChildStdin, input: &[u8]) {
    use tokio::io::AsyncWriteExt;
    match stdin.write_all(input).await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.expect("write stdin"),
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
    pub headers: Vec<(String, String)>,
    pub signed: Result<(), String>,
    pub at: Instant,
}

/// An answer queued to be given before the API's own (status 0: no answer for 10 s).
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
}

#[derive(Debug, Default)]
pub struct State {
    pub seen: Vec<Seen>,
    pub canned: VecDeque<Canned>,
    /// Keys the deployment has (the gateway answers 404 for any other).
    pub keys: HashSet<String>,
    /// Keys IAM refuses this caller.
    pub denied: HashSet<String>,
    /// The `ApiUrl` DescribeStacks answers with.
    pub stack_api_url: Option<String>,
    /// When set, the original routes are answered by ssm-core's own parser and operations
    /// with this keyring, rather than by the mimic.
    pub core: Option<Arc<ssm_core::keyring::Keyring>>,
}

#[derive(Debug, Clone)]
pub struct TestApi {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl TestApi {
    /// A server on a free loopback port, with keys `default` and `payments`.
    pub async fn start() -> TestApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            keys: ["default", "payments", "orders"].map(String::from).into(),
            ..State::default()
        }));
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestApi { url, state }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn queue(&self, status: u16, body: &str, retry_after: Option<u64>) {
        self.state().canned.push_back(Canned {
            status,
            body: body.to_owned(),
            retry_after,
        });
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

fn respond(status: u16, body: String, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

async fn handle(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
    // CloudFormation (the SDK posts a form to `/`): not ours to check the signature of.
    if parts.uri.path() == "/" && String::from_utf8_lossy(&body).contains("Action=DescribeStacks") {
        let url = lock().stack_api_url.clone();
        return describe_stacks(url.as_deref());
    }
    let signed = verify_sigv4(&parts, &body, SystemTime::now());
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        body: body.clone(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        signed: signed.clone(),
        at: Instant::now(),
    };
    let canned = {
        let mut state = lock();
        state.seen.push(seen);
        if let Err(message) = signed {
            return respond(403, json!({ "message": message }).to_string(), None);
        }
        state.canned.pop_front()
    };
    if let Some(c) = canned {
        if c.status == 0 {
            // A Lambda that does not answer in time.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        return respond(c.status, c.body, c.retry_after);
    }
    let (keys, denied, core) = {
        let state = lock();
        (state.keys.clone(), state.denied.clone(), state.core.clone())
    };
    if let Some(ring) = core.filter(|_| !parts.uri.path().starts_with("/v1/keys/")) {
        let (status, body) = core_api(&ring, parts.method.as_str(), parts.uri.path(), &body);
        return respond(status, String::from_utf8_lossy(&body).into_owned(), None);
    }
    let (status, body) = api(
        parts.method.as_str(),
        parts.uri.path(),
        &body,
        &keys,
        &denied,
    );
    respond(status, body.to_string(), None)
}

// --- SigV4, checked independently -------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// API Gateway's checks of an `execute-api` SigV4 request with the test's credentials. The error
/// is the message API Gateway would give.
pub fn verify_sigv4(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    now: SystemTime,
) -> Result<(), String> {
    const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization").ok_or("Forbidden")?;
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Forbidden")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in rest.split(", ") {
        match field.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err("Forbidden".into()),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or("Forbidden")?,
        signed_headers.ok_or("Forbidden")?,
        signature.ok_or("Forbidden")?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err("Credential should be scoped to a valid region.".into());
    };
    if access_key != ACCESS_KEY {
        return Err("The security token included in the request is invalid.".into());
    }
    if service != "execute-api" {
        return Err(format!(
            "Credential should be scoped to correct service: 'execute-api'. (got {service})"
        ));
    }
    if region != REGION {
        return Err(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        ));
    }
    let amz_date = header("x-amz-date").ok_or("Forbidden")?;
    if !amz_date.starts_with(date) {
        return Err("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.".into());
    }
    let signed_at = parse_amz_date(&amz_date).ok_or("Forbidden")?;
    let skew = match now.duration_since(signed_at) {
        Ok(skew) => skew,
        Err(ahead) => ahead.duration(),
    };
    if skew > Duration::from_secs(300) {
        return Err("Signature expired".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(MISMATCH.into());
    }
    if header("x-amz-security-token").as_deref() != Some(SESSION_TOKEN)
        || !names.contains(&"x-amz-security-token")
    {
        return Err("The security token included in the request is invalid.".into());
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let values: Vec<&str> = parts
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            return Err(MISMATCH.into());
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        hex::encode(Sha256::digest(body)),
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date, region, service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{SECRET_KEY}").into_bytes(), |key, part| {
            hmac(&key, part)
        });
    let expected = hex::encode(hmac(&key, &string_to_sign));
    if expected == signature {
        Ok(())
    } else {
        Err(MISMATCH.into())
    }
}

/// `20261202T173000Z`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days since 1970-01-01 (civil from days, inverted).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2 / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + s))
}

/// An original route answered by ssm-core, as the Lambda answers it.
fn core_api(
    ring: &ssm_core::keyring::Keyring,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use ssm_core::api::{Limits, Request, Route, execute};
    let limits = Limits::default();
    let request =
        Route::from_request(method, path).and_then(|route| Request::parse(route, body, &limits));
    match request {
        Ok(request) => {
            let response = execute(&request, Some(ring), &limits);
            (response.status, response.body)
        }
        Err(error) => (error.status, error.json_body()),
    }
}

// --- The API, mimicked ----------------------------------------------------------------------

/// A reversible stand-in for a sealed value: base64(len(context) ‖ context ‖ plaintext).
fn seal(prefix: &str, plaintext: &[u8], context: &[u8]) -> String {
    let mut raw = (context.len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(context);
    raw.extend_from_slice(plaintext);
    format!("{prefix}{}", STANDARD.encode(raw))
}

fn open(envelope: &str, context: &[u8]) -> Option<Vec<u8>> {
    let (_, data) = envelope.rsplit_once(':')?;
    let raw = STANDARD.decode(data).ok()?;
    let len = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    (raw.get(4..4 + len)? == context).then(|| raw[4 + len..].to_vec())
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

fn b64_field(body: &Value, field: &str) -> Result<Vec<u8>, (u16, Value)> {
    match body.get(field) {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => STANDARD.decode(text).map_err(|_| {
            error(
                400,
                "invalid_request",
                &format!("`{field}` is not valid standard base64"),
            )
        }),
        Some(_) => Err(error(400, "invalid_request", "invalid type")),
    }
}

fn mac_of(name: &str, input: &[u8]) -> String {
    let header = format!("ssm-mac:{name}:v1:");
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(name.as_bytes()).expect("key");
    mac.update(header.as_bytes());
    mac.update(input);
    format!("{header}{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// One operation on one item.
fn item(op: &str, name: &str, legacy: bool, body: &Value) -> Result<Value, (u16, Value)> {
    let prefix = if legacy {
        "ssm:v1:".to_owned()
    } else {
        format!("ssm2:{name}:v1:")
    };
    let context = b64_field(body, "context")?;
    let ciphertext = || {
        let text = body["ciphertext"].as_str().unwrap_or_default();
        if let Some(rest) = text.strip_prefix("ssm2:") {
            let owner = rest.split(':').next().unwrap_or_default();
            if owner != name {
                return Err(error(
                    400,
                    "key_mismatch",
                    &format!(
                        "the ciphertext was sealed by key {owner}; decrypt it with POST /v1/keys/{owner}/decrypt"
                    ),
                ));
            }
        }
        open(text, &context).ok_or_else(|| {
            error(
                400,
                "decryption_failed",
                "the ciphertext could not be decrypted",
            )
        })
    };
    match op {
        "encrypt" => {
            let plaintext = b64_field(body, "plaintext")?;
            Ok(json!({"ciphertext": seal(&prefix, &plaintext, &context), "key_version": 1}))
        }
        "decrypt" => Ok(json!({"plaintext": STANDARD.encode(ciphertext()?)})),
        "rewrap" => {
            Ok(json!({"ciphertext": seal(&prefix, &ciphertext()?, &context), "key_version": 1}))
        }
        "hmac" => Ok(json!({"mac": mac_of(name, &b64_field(body, "input")?), "key_version": 1})),
        "verify" => {
            let mac = body["mac"].as_str().unwrap_or_default();
            if let Some(owner) = mac
                .strip_prefix("ssm-mac:")
                .and_then(|rest| rest.split(':').next())
                .filter(|owner| *owner != name)
            {
                return Err(error(
                    400,
                    "key_mismatch",
                    &format!("the MAC was made by key {owner}"),
                ));
            }
            Ok(json!({"valid": mac == mac_of(name, &b64_field(body, "input")?)}))
        }
        _ => Err(error(404, "not_found", "no such route")),
    }
}

fn api(
    method: &str,
    path: &str,
    body: &[u8],
    keys: &HashSet<String>,
    denied: &HashSet<String>,
) -> (u16, Value) {
    let (name, op, legacy) = match path.strip_prefix("/v1/keys/") {
        Some(rest) => match rest.split_once('/') {
            Some((name, op)) => (name.to_owned(), op.to_owned(), false),
            None => (rest.to_owned(), "info".to_owned(), false),
        },
        None => match path {
            "/v1/keys" => ("default".to_owned(), "info".to_owned(), true),
            "/version" => return (200, json!({"version": "0.1.0"})),
            _ => {
                let op = path.trim_start_matches("/v1/").trim_start_matches('/');
                ("default".to_owned(), op.to_owned(), true)
            }
        },
    };
    if !keys.contains(&name) {
        return (404, json!({"message": "Not Found"}));
    }
    if denied.contains(&name) {
        return (
            403,
            json!({"message": format!(
                "User: arn:aws:iam::123456789012:user/test is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:{REGION}:123456789012:test/$default/{method}{path}"
            )}),
        );
    }
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    400,
                    "invalid_request",
                    "request body is not valid JSON for this route: syntax error",
                );
            }
        }
    };
    let one = |body: &Value| item(&op, &name, legacy, body);
    let answer = match (method, op.as_str()) {
        ("GET", "info") => Ok(json!({
            "name": name, "primary_version": 1, "min_decryption_version": 1, "legacy_key": false,
            "versions": [{"version": 1, "created_at": "2026-12-01T00:00:00Z", "decrypts": true, "primary": true}],
        })),
        ("POST", "datakey") => {
            let context = b64_field(&parsed, "context");
            context.map(|context| {
                let key = [7u8; 32];
                let prefix = if legacy {
                    "ssm:v1:".to_owned()
                } else {
                    format!("ssm2:{name}:v1:")
                };
                let mut out =
                    json!({"ciphertext": seal(&prefix, &key, &context), "key_version": 1});
                if parsed["wrapped_only"] != json!(true) {
                    out["plaintext"] = json!(STANDARD.encode(key));
                }
                out
            })
        }
        ("POST", "wrap") => {
            let text = parsed["text"].as_str().unwrap_or_default();
            Ok(json!({"cipher": seal("ssm:v1:", text.as_bytes(), b"")}))
        }
        ("POST", "unwrap") => {
            let cipher = parsed["cipher"].as_str().unwrap_or_default();
            open(cipher, b"")
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(|text| json!({ "text": text }))
                .ok_or_else(|| {
                    error(
                        400,
                        "decryption_failed",
                        "the ciphertext could not be decrypted",
                    )
                })
        }
        ("POST", _) => {
            // The MAC routes' batch form is `items`; the others' `batch` / `batch_results`.
            let (ask, answer) = if matches!(op.as_str(), "hmac" | "verify") {
                ("items", "items")
            } else {
                ("batch", "batch_results")
            };
            match parsed.get(ask).and_then(Value::as_array) {
                Some(items) => {
                    let results: Vec<Value> = items
                        .iter()
                        .map(|i| one(i).unwrap_or_else(|(_, e)| e))
                        .collect();
                    Ok(json!({ answer: results }))
                }
                None => one(&parsed),
            }
        }
        _ => Err(error(405, "method_not_allowed", "method not allowed")),
    };
    answer.map_or_else(|e| e, |v| (200, v))
}

fn describe_stacks(api_url: Option<&str>) -> Response<Full<Bytes>> {
    let Some(url) = api_url else {
        let body = r#"<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id Nope does not exist</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        return Response::builder()
            .status(400)
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default();
    };
    let body = format!(
        r#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>SsmServerless</StackName><StackId>arn:aws:cloudformation:{REGION}:123456789012:stack/SsmServerless/1</StackId><CreationTime>2026-12-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus><Outputs><member><OutputKey>KeySecretArn</OutputKey><OutputValue>arn:aws:secretsmanager:x</OutputValue></member><member><OutputKey>ApiUrl</OutputKey><OutputValue>{url}</OutputValue></member></Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeStacksResponse>"#
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
