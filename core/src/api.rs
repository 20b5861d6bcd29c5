//! The Crypto API: routes, wire types and the pure operation behind each route.
//!
//! The Lambda and the local server share this: they match the route, pick the keyring of the
//! key it names ([`Route::target`]: `default` for the original routes), parse the body, make
//! sure that keyring knows every version the request names (the only I/O), then
//! [`execute_as`] here. The original routes write format 1 envelopes (`ssm:v…`), the
//! `/v1/keys/{name}/…` routes format 2 (`ssm2:{name}:v…`). The exact shapes are in
//! `docs/openapi.yaml`.
//!
//! Request bodies are read into types that borrow their strings from the body (base64 has
//! nothing to unescape, so a plaintext or ciphertext is not copied before it is decoded), and
//! responses are written as JSON bytes directly, without a `serde_json::Value` tree.

use std::borrow::Cow;
use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::envelope::{DecryptError, KeyVersion};
use crate::keyname::KeyName;
use crate::keyring::{Keyring, OpenError, SealError, Sealed};
use crate::mac::MacText;
use crate::secret::{KEY_LEN, KeyMaterial, Plaintext};

/// Request limits (configurable by the deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest plaintext per item, in bytes (default 1 MiB).
    pub max_plaintext: usize,
    /// Most items in one batch (default 1000).
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_plaintext: 1 << 20,
            max_batch: 1000,
        }
    }
}

impl Limits {
    /// Largest request body worth reading: a full batch of base64 items plus JSON overhead,
    /// capped at API Gateway's 10 MB payload limit.
    pub fn max_body(&self) -> usize {
        let per_item = self.max_plaintext.div_ceil(3) * 4 + 1024;
        per_item
            .saturating_mul(self.max_batch.max(1))
            .min(10 * 1024 * 1024)
            .max(per_item)
    }
}

/// An API error: HTTP status, a stable machine code and a human message with no secret data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such route")
    }

    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("method not allowed; use {allowed}"),
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// The service holds no keyring named `name` (the deployed gateway declares each key's
    /// routes, so there this is answered before the function runs).
    pub fn unknown_key(name: &KeyName) -> Self {
        Self::new(
            404,
            "unknown_key",
            format!("there is no key named `{name}`"),
        )
    }

    pub fn keyring_unavailable() -> Self {
        Self::new(
            503,
            "keyring_unavailable",
            "the keyring could not be loaded; try again later",
        )
    }

    fn decryption_failed() -> Self {
        Self::new(400, "decryption_failed", DecryptError.to_string())
    }

    /// The JSON body `{"error": {"code", "message"}}`.
    pub fn json_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.message.len());
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a ApiError,
        }
        // Writing strings to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &Body { error: self });
    }
}

/// A JSON string of a request body, borrowed from the body unless it had escapes to undo.
///
/// A struct marks one such field `#[serde(borrow)]`; its other fields then borrow too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }
}

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Encrypt,
    Decrypt,
    Rewrap,
    DataKey,
    Keys,
    Version,
    Wrap,
    Unwrap,
    /// `/v1/keys/{name}` (GET) and `/v1/keys/{name}/{op}` (POST).
    Key(KeyName, KeyOp),
}

/// What a named-key route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOp {
    Info,
    Encrypt,
    Decrypt,
    Rewrap,
    DataKey,
    Hmac,
    Verify,
}

impl KeyOp {
    /// The last path segment of a POST operation.
    fn from_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "encrypt" => KeyOp::Encrypt,
            "decrypt" => KeyOp::Decrypt,
            "rewrap" => KeyOp::Rewrap,
            "datakey" => KeyOp::DataKey,
            "hmac" => KeyOp::Hmac,
            "verify" => KeyOp::Verify,
            _ => return None,
        })
    }
}

/// Which key a request acts as, and whether its new ciphertexts are named (format 2) envelopes.
/// The original routes act as `default` and keep writing format 1 (`ssm:v…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTarget {
    pub name: KeyName,
    pub named: bool,
}

impl KeyTarget {
    /// The original routes' target: key `default`, format 1 envelopes.
    pub const ORIGINAL: KeyTarget = KeyTarget {
        name: KeyName::DEFAULT,
        named: false,
    };

    /// A named route's target: format 2 envelopes naming `name`.
    pub fn named(name: KeyName) -> Self {
        Self { name, named: true }
    }
}

impl Route {
    /// Matches a method and path. Unknown path → 404; known path, other method → 405.
    pub fn from_request(method: &str, path: &str) -> Result<Self, ApiError> {
        let (route, allowed) = Self::lookup(path).ok_or_else(ApiError::not_found)?;
        let method_ok = method == allowed || (allowed == "GET" && method == "HEAD");
        if method_ok {
            Ok(route)
        } else {
            Err(ApiError::method_not_allowed(allowed))
        }
    }

    /// The `Allow` header for a 405 on `path` (`None` for unknown paths).
    pub fn allow_header(path: &str) -> Option<&'static str> {
        Self::lookup(path).map(|(_, allowed)| {
            if allowed == "GET" {
                "GET, HEAD"
            } else {
                allowed
            }
        })
    }

    /// The route at `path` (one trailing `/` tolerated) and the method it takes.
    fn lookup(path: &str) -> Option<(Self, &'static str)> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        Some(match path {
            "/v1/encrypt" => (Route::Encrypt, "POST"),
            "/v1/decrypt" => (Route::Decrypt, "POST"),
            "/v1/rewrap" => (Route::Rewrap, "POST"),
            "/v1/datakey" => (Route::DataKey, "POST"),
            "/v1/keys" => (Route::Keys, "GET"),
            "/version" => (Route::Version, "GET"),
            "/wrap" => (Route::Wrap, "POST"),
            "/unwrap" => (Route::Unwrap, "POST"),
            _ => {
                let rest = path.strip_prefix("/v1/keys/")?;
                let (name, op) = match rest.split_once('/') {
                    None => (rest, None),
                    Some((name, op)) => (name, Some(op)),
                };
                let name = KeyName::parse(name).ok()?;
                match op {
                    None => (Route::Key(name, KeyOp::Info), "GET"),
                    Some(op) => (Route::Key(name, KeyOp::from_segment(op)?), "POST"),
                }
            }
        })
    }

    /// The route's path, for logs (`{name}` for the key name, which is logged apart).
    pub fn path(self) -> &'static str {
        match self {
            Route::Encrypt => "/v1/encrypt",
            Route::Decrypt => "/v1/decrypt",
            Route::Rewrap => "/v1/rewrap",
            Route::DataKey => "/v1/datakey",
            Route::Keys => "/v1/keys",
            Route::Version => "/version",
            Route::Wrap => "/wrap",
            Route::Unwrap => "/unwrap",
            Route::Key(_, op) => match op {
                KeyOp::Info => "/v1/keys/{name}",
                KeyOp::Encrypt => "/v1/keys/{name}/encrypt",
                KeyOp::Decrypt => "/v1/keys/{name}/decrypt",
                KeyOp::Rewrap => "/v1/keys/{name}/rewrap",
                KeyOp::DataKey => "/v1/keys/{name}/datakey",
                KeyOp::Hmac => "/v1/keys/{name}/hmac",
                KeyOp::Verify => "/v1/keys/{name}/verify",
            },
        }
    }

    /// The key the route acts as, and the envelope format it writes.
    pub fn target(self) -> KeyTarget {
        match self {
            Route::Key(name, _) => KeyTarget::named(name),
            _ => KeyTarget::ORIGINAL,
        }
    }
}

/// `POST /v1/encrypt` item: `{plaintext, context?}` (both base64).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptItem<'a> {
    #[serde(borrow)]
    pub plaintext: Text<'a>,
    #[serde(default)]
    pub context: Option<Text<'a>>,
}

/// `POST /v1/decrypt` and `/v1/rewrap` item: `{ciphertext, context?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiphertextItem<'a> {
    #[serde(borrow)]
    pub ciphertext: Text<'a>,
    #[serde(default)]
    pub context: Option<Text<'a>>,
}

/// `POST /v1/keys/{name}/hmac` item: `{input}` (base64).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacItem<'a> {
    #[serde(borrow)]
    pub input: Text<'a>,
}

/// `POST /v1/keys/{name}/verify` item: `{input, mac}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyItem<'a> {
    #[serde(borrow)]
    pub input: Text<'a>,
    #[serde(borrow)]
    pub mac: Text<'a>,
}

/// A MAC request: one item's fields or `items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MacBody<'a> {
    #[serde(borrow)]
    input: Option<Text<'a>>,
    items: Option<Vec<MacItem<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody<'a> {
    #[serde(borrow)]
    input: Option<Text<'a>>,
    mac: Option<Text<'a>>,
    items: Option<Vec<VerifyItem<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptBody<'a> {
    #[serde(borrow)]
    plaintext: Option<Text<'a>>,
    context: Option<Text<'a>>,
    batch: Option<Vec<EncryptItem<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiphertextBody<'a> {
    #[serde(borrow)]
    ciphertext: Option<Text<'a>>,
    context: Option<Text<'a>>,
    batch: Option<Vec<CiphertextItem<'a>>>,
}

/// `POST /v1/datakey`: `{context?, wrapped_only?}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeyRequest<'a> {
    #[serde(default, borrow)]
    pub context: Option<Text<'a>>,
    #[serde(default)]
    pub wrapped_only: bool,
}

/// The original sample's `POST /wrap {"text"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapRequest<'a> {
    #[serde(borrow)]
    pub text: Text<'a>,
}

/// The original sample's `POST /unwrap {"cipher"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest<'a> {
    #[serde(borrow)]
    pub cipher: Text<'a>,
}

/// One item or a batch (`batch` for the envelope routes, `items` for the MAC routes).
#[derive(Debug, Clone)]
pub enum Items<T> {
    One(T),
    Batch(Vec<T>),
}

impl<T> Items<T> {
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        let slice = match self {
            Items::One(item) => std::slice::from_ref(item),
            Items::Batch(items) => items.as_slice(),
        };
        slice.iter()
    }
}

/// A parsed request, ready to execute. Its strings borrow from the request body.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    Encrypt(Items<EncryptItem<'a>>),
    Decrypt(Items<CiphertextItem<'a>>),
    Rewrap(Items<CiphertextItem<'a>>),
    DataKey(DataKeyRequest<'a>),
    Keys,
    Version,
    Wrap(WrapRequest<'a>),
    Unwrap(UnwrapRequest<'a>),
    Hmac(Items<MacItem<'a>>),
    Verify(Items<VerifyItem<'a>>),
}

impl<'a> Request<'a> {
    /// Parses the body for `route`. Request-level problems (bad JSON, unknown fields, both or
    /// neither of the single and batch forms, too many items) are errors here; problems of one
    /// item are reported per item by [`execute`].
    pub fn parse(route: Route, body: &'a [u8], limits: &Limits) -> Result<Self, ApiError> {
        Ok(match route {
            Route::Encrypt | Route::Key(_, KeyOp::Encrypt) => {
                let b: EncryptBody = json(body)?;
                Request::Encrypt(one_or_batch(
                    b.plaintext.map(|plaintext| EncryptItem {
                        plaintext,
                        context: b.context.clone(),
                    }),
                    b.context.is_some(),
                    b.batch,
                    "plaintext",
                    "batch",
                    limits,
                )?)
            }
            Route::Decrypt
            | Route::Rewrap
            | Route::Key(_, KeyOp::Decrypt)
            | Route::Key(_, KeyOp::Rewrap) => {
                let b: CiphertextBody = json(body)?;
                let items = one_or_batch(
                    b.ciphertext.map(|ciphertext| CiphertextItem {
                        ciphertext,
                        context: b.context.clone(),
                    }),
                    b.context.is_some(),
                    b.batch,
                    "ciphertext",
                    "batch",
                    limits,
                )?;
                if matches!(route, Route::Decrypt | Route::Key(_, KeyOp::Decrypt)) {
                    Request::Decrypt(items)
                } else {
                    Request::Rewrap(items)
                }
            }
            Route::DataKey | Route::Key(_, KeyOp::DataKey)
                if body.iter().all(u8::is_ascii_whitespace) =>
            {
                Request::DataKey(DataKeyRequest::default())
            }
            Route::DataKey | Route::Key(_, KeyOp::DataKey) => Request::DataKey(json(body)?),
            Route::Keys | Route::Key(_, KeyOp::Info) => Request::Keys,
            Route::Version => Request::Version,
            Route::Wrap => Request::Wrap(json(body)?),
            Route::Unwrap => Request::Unwrap(json(body)?),
            Route::Key(_, KeyOp::Hmac) => {
                let b: MacBody = json(body)?;
                let one = b.input.map(|input| MacItem { input });
                Request::Hmac(one_or_batch(one, false, b.items, "input", "items", limits)?)
            }
            Route::Key(_, KeyOp::Verify) => {
                let b: VerifyBody = json(body)?;
                let one = match (b.input, b.mac) {
                    (Some(input), Some(mac)) => Some(VerifyItem { input, mac }),
                    (None, None) => None,
                    (Some(_), None) => return Err(ApiError::bad_request("missing `mac`")),
                    (None, Some(_)) => return Err(ApiError::bad_request("missing `input`")),
                };
                Request::Verify(one_or_batch(
                    one,
                    false,
                    b.items,
                    "input` and `mac",
                    "items",
                    limits,
                )?)
            }
        })
    }

    /// The newest key version any ciphertext in the request names: if the cached keyring
    /// does not know it, the caller refreshes before executing.
    pub fn newest_named_version(&self) -> Option<KeyVersion> {
        match self {
            Request::Decrypt(items) | Request::Rewrap(items) => items
                .iter()
                .filter_map(|item| Keyring::named_version(&item.ciphertext))
                .max(),
            Request::Unwrap(req) => Keyring::named_version(&req.cipher),
            Request::Verify(items) => items
                .iter()
                .filter_map(|item| MacText::named_version(&item.mac))
                .max(),
            _ => None,
        }
    }

    /// Whether executing needs the keyring at all.
    pub fn needs_keyring(&self) -> bool {
        !matches!(self, Request::Version)
    }
}

/// What one request did, for the access log: no data, only sizes and versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub items: usize,
    pub failed_items: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub key_versions: Vec<KeyVersion>,
    pub legacy_items: usize,
}

impl Summary {
    fn note_version(&mut self, version: Option<KeyVersion>) {
        match version {
            Some(v) if !self.key_versions.contains(&v) => self.key_versions.push(v),
            Some(_) => {}
            None => self.legacy_items += 1,
        }
    }
}

/// The outcome: HTTP status, JSON body, and the log summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The JSON body, as sent.
    pub body: Vec<u8>,
    /// The error's code when the whole request failed (for the access log).
    pub error_code: Option<String>,
    pub summary: Summary,
}

impl Response {
    pub fn error(error: &ApiError) -> Self {
        Self::failed(error, Summary::default())
    }

    fn failed(error: &ApiError, summary: Summary) -> Self {
        Self {
            status: error.status,
            body: error.json_body(),
            error_code: Some(error.code.clone()),
            summary,
        }
    }
}

/// A response body being written. Strings we produced ourselves as base64 or envelopes (no
/// character JSON escapes) are copied in as they are; any other string goes through serde_json.
#[derive(Debug, Default)]
struct Json(Vec<u8>);

impl Json {
    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    /// A string that needs no escaping: base64, an envelope, a version number.
    fn plain_str(&mut self, text: &str) {
        debug_assert!(
            text.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        );
        self.0.push(b'"');
        self.0.extend_from_slice(text.as_bytes());
        self.0.push(b'"');
    }

    /// Any string, escaped as JSON requires.
    fn str(&mut self, text: &str) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.0, text);
    }

    /// `bytes` as a base64 string.
    fn base64(&mut self, bytes: &[u8]) {
        self.0.push(b'"');
        let at = self.0.len();
        self.0.resize(at + bytes.len().div_ceil(3) * 4, 0);
        let written = STANDARD.encode_slice(bytes, &mut self.0[at..]).unwrap_or(0);
        self.0.truncate(at + written);
        self.0.push(b'"');
    }

    fn number(&mut self, n: u32) {
        self.raw(&n.to_string());
    }

    /// `{"version":"<this build's version>"}`.
    fn version(&mut self) {
        self.raw("{\"version\":");
        self.plain_str(env!("CARGO_PKG_VERSION"));
        self.raw("}");
    }

    /// `{"plaintext":"<base64>"}`.
    fn plaintext(&mut self, bytes: &[u8]) {
        self.raw("{\"plaintext\":");
        self.base64(bytes);
        self.raw("}");
    }

    /// `{"ciphertext":"…","key_version":N}`.
    fn sealed(&mut self, sealed: &Sealed) {
        self.raw("{");
        self.sealed_fields(sealed);
        self.raw("}");
    }

    /// `"ciphertext":"…","key_version":N` (no braces).
    fn sealed_fields(&mut self, sealed: &Sealed) {
        self.raw("\"ciphertext\":");
        self.plain_str(&sealed.ciphertext);
        self.raw(",\"key_version\":");
        self.number(sealed.version.get());
    }
}

/// Executes a parsed request of an original route (key `default`, format 1 envelopes)
/// against a keyring (`None` only for requests that need none).
pub fn execute(request: &Request<'_>, ring: Option<&Keyring>, limits: &Limits) -> Response {
    execute_as(KeyTarget::ORIGINAL, request, ring, limits)
}

/// Executes a parsed request as the key `target` (from [`Route::target`]) against that key's
/// keyring (`None` only for requests that need none).
pub fn execute_as(
    target: KeyTarget,
    request: &Request<'_>,
    ring: Option<&Keyring>,
    limits: &Limits,
) -> Response {
    let mut summary = Summary::default();
    let mut out = Json(Vec::with_capacity(response_capacity(request)));
    let result = match ring {
        Some(ring) => run(
            &Key { target, ring },
            request,
            limits,
            &mut summary,
            &mut out,
        ),
        None if !request.needs_keyring() => {
            out.version();
            Ok(())
        }
        None => Err(ApiError::keyring_unavailable()),
    };
    match result {
        Ok(()) => Response {
            status: 200,
            body: out.0,
            error_code: None,
            summary,
        },
        Err(error) => Response::failed(&error, summary),
    }
}

/// A key's keyring and how requests use it: which name envelopes and MACs carry, and which
/// envelope format new ciphertexts take.
#[derive(Debug, Clone, Copy)]
struct Key<'r> {
    target: KeyTarget,
    ring: &'r Keyring,
}

impl Key<'_> {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, ApiError> {
        let sealed = if self.target.named {
            self.ring
                .encrypt_named(&self.target.name, plaintext, context)
        } else {
            self.ring.encrypt(plaintext, context)
        };
        sealed.map_err(seal_error)
    }

    fn open(
        &self,
        ciphertext: &str,
        context: &[u8],
        op: &str,
    ) -> Result<(Plaintext, Option<KeyVersion>), ApiError> {
        self.ring
            .decrypt_as(&self.target.name, ciphertext, context)
            .map_err(|error| open_error(error, "ciphertext", op))
    }
}

fn run(
    key: &Key<'_>,
    request: &Request<'_>,
    limits: &Limits,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    match request {
        Request::Version => {
            out.version();
            Ok(())
        }
        Request::Encrypt(items) => run_items(items, BATCH, summary, out, |item, s, out| {
            encrypt_item(key, item, limits, s, out)
        }),
        Request::Decrypt(items) => run_items(items, BATCH, summary, out, |item, s, out| {
            decrypt_item(key, item, s, out)
        }),
        Request::Rewrap(items) => run_items(items, BATCH, summary, out, |item, s, out| {
            rewrap_item(key, item, s, out)
        }),
        Request::DataKey(req) => data_key(key, req, summary, out),
        Request::Keys => {
            // Through a Value, so the fields keep the order every other body has (sorted).
            let mut info = serde_json::to_value(key.ring.info()).unwrap_or_default();
            if let (true, Some(fields)) = (key.target.named, info.as_object_mut()) {
                fields.insert("name".to_owned(), key.target.name.as_str().into());
            }
            let _ = serde_json::to_writer(&mut out.0, &info);
            Ok(())
        }
        Request::Wrap(req) => seal_within_limit(key, req.text.as_bytes(), b"", limits, summary)
            .map(|sealed| {
                out.raw("{\"cipher\":");
                out.plain_str(&sealed.ciphertext);
                out.raw("}");
            }),
        Request::Unwrap(req) => unwrap(key, req, summary, out),
        Request::Hmac(items) => run_items(items, ITEMS, summary, out, |item, s, out| {
            mac_item(key, item, limits, s, out)
        }),
        Request::Verify(items) => run_items(items, ITEMS, summary, out, |item, s, out| {
            verify_item(key, item, limits, s, out)
        }),
    }
}

/// Room for the usual answer: an envelope or base64 is about 4/3 of its input.
fn response_capacity(request: &Request<'_>) -> usize {
    let input: usize = match request {
        Request::Encrypt(items) => items.iter().map(|i| i.plaintext.len()).sum(),
        Request::Decrypt(items) | Request::Rewrap(items) => {
            items.iter().map(|i| i.ciphertext.len()).sum()
        }
        Request::Wrap(req) => req.text.len(),
        Request::Unwrap(req) => req.cipher.len(),
        Request::Hmac(items) => items.iter().count() * 128,
        Request::Verify(items) => items.iter().count() * 16,
        _ => 0,
    };
    input.saturating_add(input / 3).saturating_add(128)
}

/// The batch field of the envelope routes' answers.
const BATCH: &str = "batch_results";
/// The batch field of the MAC routes' answers.
const ITEMS: &str = "items";

/// One item answers with its result or its error (and that error's status); a batch answers
/// 200 with every item's result or error in input order, under `field`.
fn run_items<T>(
    items: &Items<T>,
    field: &str,
    summary: &mut Summary,
    out: &mut Json,
    mut op: impl FnMut(&T, &mut Summary, &mut Json) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    match items {
        Items::One(item) => {
            summary.items = 1;
            op(item, summary, out).inspect_err(|_| {
                summary.failed_items = 1;
                out.0.clear();
            })
        }
        Items::Batch(batch) => {
            summary.items = batch.len();
            out.raw("{\"");
            out.raw(field);
            out.raw("\":[");
            for (i, item) in batch.iter().enumerate() {
                if i > 0 {
                    out.raw(",");
                }
                let at = out.0.len();
                if let Err(error) = op(item, summary, out) {
                    summary.failed_items += 1;
                    out.0.truncate(at);
                    error.write_json(&mut out.0);
                }
            }
            out.raw("]}");
            Ok(())
        }
    }
}

fn encrypt_item(
    key: &Key<'_>,
    item: &EncryptItem<'_>,
    limits: &Limits,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let plaintext = decode_b64(&item.plaintext, "plaintext")?;
    let context = decode_context(item.context.as_deref())?;
    let sealed = seal_within_limit(key, plaintext.expose(), context.expose(), limits, summary)?;
    out.sealed(&sealed);
    Ok(())
}

/// Refuses an input over the plaintext limit (413).
fn check_size(what: &str, len: usize, limits: &Limits) -> Result<(), ApiError> {
    if len > limits.max_plaintext {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "{what} is {len} bytes; the limit is {}",
                limits.max_plaintext
            ),
        ));
    }
    Ok(())
}

/// Seals `plaintext` under the primary version if it is within the limit, and notes it.
fn seal_within_limit(
    key: &Key<'_>,
    plaintext: &[u8],
    context: &[u8],
    limits: &Limits,
    summary: &mut Summary,
) -> Result<Sealed, ApiError> {
    check_size("plaintext", plaintext.len(), limits)?;
    let sealed = seal_noted(key, plaintext, context, summary)?;
    summary.bytes_in += plaintext.len();
    Ok(sealed)
}

/// Seals `plaintext` under the primary version and notes the output and the version.
fn seal_noted(
    key: &Key<'_>,
    plaintext: &[u8],
    context: &[u8],
    summary: &mut Summary,
) -> Result<Sealed, ApiError> {
    let sealed = key.seal(plaintext, context)?;
    summary.bytes_out += sealed.ciphertext.len();
    summary.note_version(Some(sealed.version));
    Ok(sealed)
}

fn open(
    key: &Key<'_>,
    ciphertext: &str,
    context: Option<&str>,
    op: &str,
    summary: &mut Summary,
) -> Result<(Plaintext, Plaintext), ApiError> {
    let context = decode_context(context)?;
    let (plaintext, version) = key.open(ciphertext, context.expose(), op)?;
    summary.bytes_in += ciphertext.len();
    summary.note_version(version);
    Ok((plaintext, context))
}

fn decrypt_item(
    key: &Key<'_>,
    item: &CiphertextItem<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, _) = open(
        key,
        &item.ciphertext,
        item.context.as_deref(),
        "decrypt",
        summary,
    )?;
    summary.bytes_out += plaintext.len();
    out.plaintext(plaintext.expose());
    Ok(())
}

fn rewrap_item(
    key: &Key<'_>,
    item: &CiphertextItem<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, context) = open(
        key,
        &item.ciphertext,
        item.context.as_deref(),
        "rewrap",
        summary,
    )?;
    let sealed = seal_noted(key, plaintext.expose(), context.expose(), summary)?;
    out.sealed(&sealed);
    Ok(())
}

fn data_key(
    key: &Key<'_>,
    req: &DataKeyRequest<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let context = decode_context(req.context.as_deref())?;
    let data_key = KeyMaterial::generate().map_err(|_| {
        ApiError::new(
            503,
            "randomness_unavailable",
            "the random number generator failed",
        )
    })?;
    let sealed = key.seal(data_key.expose(), context.expose())?;
    summary.items = 1;
    summary.bytes_out += KEY_LEN;
    summary.note_version(Some(sealed.version));
    out.raw("{");
    out.sealed_fields(&sealed);
    if !req.wrapped_only {
        out.raw(",\"plaintext\":");
        out.base64(data_key.expose());
    }
    out.raw("}");
    Ok(())
}

fn unwrap(
    key: &Key<'_>,
    req: &UnwrapRequest<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, _) = open(key, req.cipher.trim(), None, "decrypt", summary)?;
    let text = std::str::from_utf8(plaintext.expose()).map_err(|_| {
        ApiError::new(
            422,
            "not_text",
            "the plaintext is not UTF-8 text; use POST /v1/decrypt for binary data",
        )
    })?;
    summary.bytes_out += text.len();
    out.raw("{\"text\":");
    out.str(text);
    out.raw("}");
    Ok(())
}

/// A MAC route's `input`, decoded and within the plaintext limit.
fn mac_input(text: &str, limits: &Limits) -> Result<Plaintext, ApiError> {
    let input = decode_b64(text, "input")?;
    check_size("input", input.len(), limits)?;
    Ok(input)
}

/// `{"mac":"ssm-mac:…","key_version":N}`.
fn mac_item(
    key: &Key<'_>,
    item: &MacItem<'_>,
    limits: &Limits,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let input = mac_input(&item.input, limits)?;
    let (mac, version) = key
        .ring
        .mac(&key.target.name, input.expose())
        .map_err(seal_error)?;
    summary.bytes_in += input.len();
    summary.bytes_out += mac.len();
    summary.note_version(Some(version));
    out.raw("{\"mac\":");
    out.plain_str(&mac);
    out.raw(",\"key_version\":");
    out.number(version.get());
    out.raw("}");
    Ok(())
}

/// `{"valid":true|false}`. A MAC that is malformed, names a version the keyring does not
/// hold, or does not match is `false` alike; only another key's MAC (400 `key_mismatch`) and
/// a retired version (400 `key_version_retired`) are errors.
fn verify_item(
    key: &Key<'_>,
    item: &VerifyItem<'_>,
    limits: &Limits,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let input = mac_input(&item.input, limits)?;
    let valid = match key
        .ring
        .verify_mac(&key.target.name, &item.mac, input.expose())
    {
        Ok(valid) => valid,
        Err(OpenError::NewerVersion(_) | OpenError::Invalid(_)) => false,
        Err(error) => return Err(open_error(error, "MAC", "verify")),
    };
    summary.bytes_in += input.len();
    summary.note_version(MacText::named_version(&item.mac).filter(|_| valid));
    out.raw(if valid {
        "{\"valid\":true}"
    } else {
        "{\"valid\":false}"
    });
    Ok(())
}

fn seal_error(error: SealError) -> ApiError {
    match error {
        SealError::NoPrimary => ApiError::new(503, "keyring_uninitialised", error.to_string()),
        SealError::Encrypt(e) => ApiError::new(503, "encryption_unavailable", e.to_string()),
    }
}

/// `what` is the thing that did not open (`ciphertext`, `MAC`); `op` the route's operation,
/// for naming the route that would take it.
fn open_error(error: OpenError, what: &str, op: &str) -> ApiError {
    match error {
        OpenError::Retired { .. } => ApiError::new(400, "key_version_retired", error.to_string()),
        OpenError::KeyMismatch { found, expected } => ApiError::new(
            400,
            "key_mismatch",
            format!(
                "the {what} belongs to key `{found}`, not `{expected}`: use POST /v1/keys/{found}/{op}"
            ),
        ),
        // A version newer than the (already refreshed) keyring: as any other bad ciphertext.
        OpenError::Invalid(_) | OpenError::NewerVersion(_) => ApiError::decryption_failed(),
    }
}

fn decode_b64(text: &str, field: &str) -> Result<Plaintext, ApiError> {
    STANDARD
        .decode(text)
        .map(Plaintext::new)
        .map_err(|_| ApiError::bad_request(format!("`{field}` is not valid standard base64")))
}

fn decode_context(context: Option<&str>) -> Result<Plaintext, ApiError> {
    match context {
        None => Ok(Plaintext::new(Vec::new())),
        Some(text) => decode_b64(text, "context"),
    }
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        // Data errors name the field (`unknown field `x``, `missing field`), never values.
        let detail = match e.classify() {
            Category::Data => {
                let text = e.to_string();
                text.split(" at line").next().unwrap_or("").to_owned()
            }
            Category::Syntax | Category::Io => "syntax error".to_owned(),
            Category::Eof => "unexpected end of input".to_owned(),
        };
        ApiError::bad_request(format!(
            "request body is not valid JSON for this route: {detail}"
        ))
    })
}

/// One item's fields or a list of items (`list`: `batch` on the envelope routes, `items` on
/// the MAC routes).
fn one_or_batch<T>(
    single: Option<T>,
    has_context: bool,
    batch: Option<Vec<T>>,
    field: &str,
    list: &str,
    limits: &Limits,
) -> Result<Items<T>, ApiError> {
    match (single, batch) {
        (Some(item), None) => Ok(Items::One(item)),
        (None, Some(_)) if has_context => Err(ApiError::bad_request(format!(
            "`context` goes inside each batch item, not beside `{list}`"
        ))),
        (None, Some(batch)) if batch.is_empty() => {
            Err(ApiError::bad_request(format!("`{list}` is empty")))
        }
        (None, Some(batch)) if batch.len() > limits.max_batch => Err(ApiError::new(
            413,
            "batch_too_large",
            format!(
                "`{list}` has {} items; the limit is {}",
                batch.len(),
                limits.max_batch
            ),
        )),
        (None, Some(batch)) => Ok(Items::Batch(batch)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "send either `{field}` or `{list}`, not both"
        ))),
        (None, None) => Err(ApiError::bad_request(format!(
            "missing `{field}` (or `{list}`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::LegacyKey;
    use serde_json::{Value, json};

    fn ring() -> Keyring {
        let mut ring =
            Keyring::from_json(r#"{"aes_key": "0123456789abcdef0123456789abcdef"}"#).unwrap();
        ring.rotate("2026-11-28T00:00:00Z".parse().unwrap())
            .unwrap();
        ring
    }

    /// A response with its body parsed back, for asserting on.
    struct Answer {
        status: u16,
        body: Value,
        summary: Summary,
    }

    fn call(ring: &Keyring, route: Route, body: Value) -> Answer {
        call_with(ring, route, body, &Limits::default())
    }

    fn call_with(ring: &Keyring, route: Route, body: Value, limits: &Limits) -> Answer {
        let bytes = serde_json::to_vec(&body).unwrap();
        let response = match Request::parse(route, &bytes, limits) {
            Ok(request) => execute_as(route.target(), &request, Some(ring), limits),
            Err(error) => Response::error(&error),
        };
        let parsed: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            response.error_code.as_deref(),
            (response.status != 200)
                .then(|| parsed["error"]["code"].as_str())
                .flatten()
        );
        Answer {
            status: response.status,
            body: parsed,
            summary: response.summary,
        }
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn routes_404_and_405() {
        assert_eq!(
            Route::from_request("POST", "/v1/encrypt"),
            Ok(Route::Encrypt)
        );
        assert_eq!(
            Route::from_request("POST", "/v1/encrypt/"),
            Ok(Route::Encrypt)
        );
        assert_eq!(
            Route::from_request("GET", "/v1/encrypt")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            Route::from_request("POST", "/v1/keys").unwrap_err().status,
            405
        );
        assert_eq!(
            Route::from_request("GET", "/v2/encrypt")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(Route::from_request("GET", "/").unwrap_err().status, 404);
        assert_eq!(Route::allow_header("/v1/keys/"), Some("GET, HEAD"));
        assert_eq!(Route::allow_header("/wrap"), Some("POST"));
        assert_eq!(Route::allow_header("/nope"), None);
    }

    fn key(name: &str, op: KeyOp) -> Route {
        Route::Key(KeyName::parse(name).unwrap(), op)
    }

    #[test]
    fn named_routes_match() {
        let payments = KeyName::parse("payments").unwrap();
        for (segment, op) in [
            ("encrypt", KeyOp::Encrypt),
            ("decrypt", KeyOp::Decrypt),
            ("rewrap", KeyOp::Rewrap),
            ("datakey", KeyOp::DataKey),
            ("hmac", KeyOp::Hmac),
            ("verify", KeyOp::Verify),
        ] {
            for path in [
                format!("/v1/keys/payments/{segment}"),
                format!("/v1/keys/default/{segment}/"),
            ] {
                let name = path.split('/').nth(3).unwrap();
                assert_eq!(Route::from_request("POST", &path), Ok(key(name, op)));
            }
        }
        for path in ["/v1/keys/payments", "/v1/keys/payments/"] {
            assert_eq!(
                Route::from_request("GET", path),
                Ok(key("payments", KeyOp::Info))
            );
            assert_eq!(
                Route::from_request("HEAD", path),
                Ok(key("payments", KeyOp::Info))
            );
        }
        assert_eq!(
            key("payments", KeyOp::Hmac).target(),
            KeyTarget {
                name: payments,
                named: true
            }
        );
        assert_eq!(Route::Decrypt.target(), KeyTarget::ORIGINAL);
        assert_eq!(key("a", KeyOp::Verify).path(), "/v1/keys/{name}/verify");
        for path in [
            "/v1/keys/Payments/encrypt",
            "/v1/keys/pay_ments/encrypt",
            "/v1/keys/payments/sign",
            "/v1/keys/payments/encrypt/x",
            "/v1/keys//encrypt",
            "/v1/keys/payments-/encrypt",
        ] {
            let error = Route::from_request("POST", path).unwrap_err();
            assert_eq!(
                (error.status, error.code.as_str()),
                (404, "not_found"),
                "{path}"
            );
        }
        assert_eq!(
            Route::from_request("GET", "/v1/keys/payments/hmac")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            Route::from_request("POST", "/v1/keys/payments")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(Route::allow_header("/v1/keys/payments"), Some("GET, HEAD"));
        assert_eq!(
            Route::allow_header("/v1/keys/payments/verify"),
            Some("POST")
        );
        let unknown = ApiError::unknown_key(&payments);
        assert_eq!(
            (unknown.status, unknown.code.as_str()),
            (404, "unknown_key")
        );
    }

    #[test]
    fn original_routes_write_format_1_and_named_routes_format_2() {
        let ring = ring();
        let old = call(&ring, Route::Encrypt, json!({"plaintext": b64(b"hi")}));
        let old_ct = old.body["ciphertext"].as_str().unwrap().to_owned();
        assert!(old_ct.starts_with("ssm:v1:"), "{old_ct}");
        let new = call(
            &ring,
            key("default", KeyOp::Encrypt),
            json!({"plaintext": b64(b"hi"), "context": "Yw=="}),
        );
        let new_ct = new.body["ciphertext"].as_str().unwrap().to_owned();
        assert!(new_ct.starts_with("ssm2:default:v1:"), "{new_ct}");
        assert_eq!(new.body["key_version"], 1);
        // Both formats of the default key open through both the old and the named route.
        for route in [Route::Decrypt, key("default", KeyOp::Decrypt)] {
            let dec = call(&ring, route, json!({"ciphertext": old_ct}));
            assert_eq!(dec.body, json!({"plaintext": b64(b"hi")}));
            let dec = call(
                &ring,
                route,
                json!({"ciphertext": new_ct, "context": "Yw=="}),
            );
            assert_eq!(dec.body, json!({"plaintext": b64(b"hi")}));
        }
        let unwrapped = call(&ring, Route::Unwrap, json!({"cipher": new_ct}));
        assert_eq!(unwrapped.status, 400, "{:?}", unwrapped.body);
        // Rewrap and datakey on a named route write format 2 too; wrap stays format 1.
        let rewrapped = call(
            &ring,
            key("default", KeyOp::Rewrap),
            json!({"ciphertext": old_ct}),
        );
        assert!(
            rewrapped.body["ciphertext"]
                .as_str()
                .unwrap()
                .starts_with("ssm2:default:v1:")
        );
        let data = call(&ring, key("payments", KeyOp::DataKey), json!({}));
        assert!(
            data.body["ciphertext"]
                .as_str()
                .unwrap()
                .starts_with("ssm2:payments:v1:")
        );
        let wrapped = call(&ring, Route::Wrap, json!({"text": "t"}));
        assert!(
            wrapped.body["cipher"]
                .as_str()
                .unwrap()
                .starts_with("ssm:v1:")
        );
    }

    #[test]
    fn another_keys_ciphertext_is_key_mismatch() {
        // One keyring serves both names here, so only the name check can refuse.
        let ring = ring();
        let enc = call(
            &ring,
            key("orders", KeyOp::Encrypt),
            json!({"plaintext": b64(b"o")}),
        );
        let ct = enc.body["ciphertext"].clone();
        for (route, op) in [
            (key("payments", KeyOp::Decrypt), "decrypt"),
            (key("payments", KeyOp::Rewrap), "rewrap"),
            (Route::Decrypt, "decrypt"),
            (Route::Rewrap, "rewrap"),
        ] {
            let res = call(&ring, route, json!({"ciphertext": ct}));
            assert_eq!(res.status, 400);
            assert_eq!(res.body["error"]["code"], "key_mismatch");
            let message = res.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("key `orders`"), "{message}");
            assert!(
                message.contains(&format!("POST /v1/keys/orders/{op}")),
                "{message}"
            );
        }
        let old = call(&ring, Route::Encrypt, json!({"plaintext": b64(b"d")}));
        let res = call(
            &ring,
            key("orders", KeyOp::Decrypt),
            json!({"batch": [{"ciphertext": old.body["ciphertext"]}, {"ciphertext": ct}]}),
        );
        assert_eq!(res.status, 200);
        assert_eq!(
            res.body["batch_results"][0]["error"]["code"],
            "key_mismatch"
        );
        assert_eq!(res.body["batch_results"][1]["plaintext"], b64(b"o"));
        // A legacy ciphertext is the default key's: another key cannot open it.
        let legacy = LegacyKey::new("0123456789abcdef0123456789abcdef".into())
            .unwrap()
            .encrypt_for_tests([9; 16], b"p");
        let res = call(
            &ring,
            key("orders", KeyOp::Decrypt),
            json!({ "ciphertext": legacy }),
        );
        assert_eq!(res.body["error"]["code"], "decryption_failed");
    }

    #[test]
    fn key_info_adds_the_name() {
        let ring = ring();
        let old = call(&ring, Route::Keys, Value::Null);
        let named = call(&ring, key("payments", KeyOp::Info), Value::Null);
        let mut expected = old.body.clone();
        expected["name"] = json!("payments");
        assert_eq!(named.body, expected);
        assert!(old.body.get("name").is_none());
    }

    #[test]
    fn hmac_and_verify() {
        let mut ring = ring();
        let hmac = key("payments", KeyOp::Hmac);
        let verify = key("payments", KeyOp::Verify);
        let res = call(&ring, hmac, json!({"input": b64(b"msg")}));
        assert_eq!(res.status, 200, "{:?}", res.body);
        // Sorted: serde_json's `preserve_order` is on in some workspace builds.
        let mut fields: Vec<&String> = res.body.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["key_version", "mac"]);
        let mac = res.body["mac"].as_str().unwrap().to_owned();
        assert!(mac.starts_with("ssm-mac:payments:v1:"), "{mac}");
        assert_eq!(res.body["key_version"], 1);
        let check = |ring: &Keyring, input: &[u8], mac: &str| {
            call(ring, verify, json!({"input": b64(input), "mac": mac}))
        };
        assert_eq!(check(&ring, b"msg", &mac).body, json!({"valid": true}));
        assert_eq!(check(&ring, b"msG", &mac).body, json!({"valid": false}));
        for malformed in [
            "",
            "garbage",
            "ssm-mac:payments:v1:AAAA",
            "ssm-mac:payments:v9:",
        ] {
            let res = check(&ring, b"msg", malformed);
            assert_eq!((res.status, &res.body), (200, &json!({"valid": false})));
        }
        let newer = mac.replacen(":v1:", ":v2:", 1);
        assert_eq!(check(&ring, b"msg", &newer).body, json!({"valid": false}));
        let res = call(
            &ring,
            key("orders", KeyOp::Verify),
            json!({"input": b64(b"msg"), "mac": mac}),
        );
        assert_eq!(res.status, 400);
        assert_eq!(res.body["error"]["code"], "key_mismatch");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("POST /v1/keys/payments/verify")
        );
        // Batches answer `items` in order, with per-item errors.
        let res = call(
            &ring,
            hmac,
            json!({"items": [{"input": b64(b"a")}, {"input": "not base64!"}, {"input": ""}]}),
        );
        assert_eq!(res.status, 200);
        let items = res.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1]["error"]["code"], "invalid_request");
        let batch = call(
            &ring,
            verify,
            json!({"items": [
                {"input": b64(b"a"), "mac": items[0]["mac"]},
                {"input": b64(b"b"), "mac": items[0]["mac"]},
                {"input": "", "mac": items[2]["mac"]},
            ]}),
        );
        assert_eq!(
            batch.body,
            json!({"items": [{"valid": true}, {"valid": false}, {"valid": true}]})
        );
        assert_eq!((batch.summary.items, batch.summary.failed_items), (3, 0));
        // The minimum decryption version retires MACs as it retires ciphertexts.
        ring.rotate("2026-11-29T00:00:00Z".parse().unwrap())
            .unwrap();
        let second = call(&ring, hmac, json!({"input": b64(b"msg")}));
        assert_eq!(second.body["key_version"], 2);
        assert_eq!(check(&ring, b"msg", &mac).body, json!({"valid": true}));
        ring.set_min_decryption_version(KeyVersion::new(2).unwrap())
            .unwrap();
        let res = check(&ring, b"msg", &mac);
        assert_eq!(res.status, 400);
        assert_eq!(res.body["error"]["code"], "key_version_retired");
        let mac2 = second.body["mac"].as_str().unwrap();
        assert_eq!(check(&ring, b"msg", mac2).body, json!({"valid": true}));
    }

    #[test]
    fn mac_request_errors() {
        let ring = ring();
        let hmac = key("k", KeyOp::Hmac);
        let verify = key("k", KeyOp::Verify);
        let limits = Limits {
            max_plaintext: 4,
            max_batch: 2,
        };
        for (route, body, status, needle) in [
            (hmac, json!({}), 400, "missing `input`"),
            (hmac, json!({"input": "", "items": []}), 400, "not both"),
            (hmac, json!({"items": []}), 400, "empty"),
            (hmac, json!({"input": "", "extra": 1}), 400, "unknown field"),
            (hmac, json!({"input": b64(b"12345")}), 413, "limit is 4"),
            (
                hmac,
                json!({"items": [{"input": ""}, {"input": ""}, {"input": ""}]}),
                413,
                "limit is 2",
            ),
            (verify, json!({"input": ""}), 400, "missing `mac`"),
            (verify, json!({"mac": ""}), 400, "missing `input`"),
            (
                verify,
                json!({"items": [{"input": ""}]}),
                400,
                "missing field `mac`",
            ),
        ] {
            let res = call_with(&ring, route, body.clone(), &limits);
            assert_eq!(res.status, status, "{body}: {:?}", res.body);
            let message = res.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{body}: {message}");
        }
        let req = Request::parse(
            verify,
            br#"{"items": [{"input": "", "mac": "ssm-mac:k:v3:AA=="}, {"input": "", "mac": "x"}]}"#,
            &Limits::default(),
        )
        .unwrap();
        // Only a well-formed MAC names a version for the early refresh.
        assert_eq!(req.newest_named_version(), None);
        let tag = STANDARD.encode([0u8; 32]);
        let body = format!(r#"{{"input": "", "mac": "ssm-mac:k:v7:{tag}"}}"#);
        let req = Request::parse(verify, body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(req.newest_named_version(), KeyVersion::new(7));
    }

    #[test]
    fn encrypt_decrypt_round_trip_with_context() {
        let ring = ring();
        let enc = call(
            &ring,
            Route::Encrypt,
            json!({"plaintext": b64(b"hi"), "context": b64(b"t=1")}),
        );
        assert_eq!(enc.status, 200, "{:?}", enc.body);
        assert_eq!(enc.body["key_version"], 1);
        let ct = enc.body["ciphertext"].as_str().unwrap().to_owned();
        assert!(ct.starts_with("ssm:v1:"));
        let dec = call(
            &ring,
            Route::Decrypt,
            json!({"ciphertext": ct, "context": b64(b"t=1")}),
        );
        assert_eq!(dec.body, json!({"plaintext": b64(b"hi")}));
        let wrong = call(
            &ring,
            Route::Decrypt,
            json!({"ciphertext": ct, "context": b64(b"t=2")}),
        );
        assert_eq!(wrong.status, 400);
        assert_eq!(wrong.body["error"]["code"], "decryption_failed");
        assert_eq!(enc.summary.key_versions, vec![KeyVersion::FIRST]);
        assert_eq!(dec.summary.bytes_out, 2);
    }

    #[test]
    fn bodies_are_borrowed_unless_escaped() {
        let body = br#"{"plaintext": "aGk/", "context": "Yw=="}"#;
        let Ok(Request::Encrypt(Items::One(item))) =
            Request::parse(Route::Encrypt, body, &Limits::default())
        else {
            panic!("parses");
        };
        assert!(matches!(item.plaintext.0, Cow::Borrowed("aGk/")));
        // A client that escapes `/` (as some JSON encoders do) still works: that one is copied.
        let escaped = br#"{"plaintext": "aGk\/"}"#;
        let Ok(Request::Encrypt(Items::One(item))) =
            Request::parse(Route::Encrypt, escaped, &Limits::default())
        else {
            panic!("parses");
        };
        assert!(matches!(&item.plaintext.0, Cow::Owned(text) if text == "aGk/"));
        let ring = ring();
        let enc = call(&ring, Route::Encrypt, json!({"plaintext": "aGk/"}));
        let bytes = format!(
            r#"{{"ciphertext": "{}"}}"#,
            enc.body["ciphertext"].as_str().unwrap()
        )
        .replace('/', "\\/");
        let request = Request::parse(Route::Decrypt, bytes.as_bytes(), &Limits::default()).unwrap();
        let dec = execute(&request, Some(&ring), &Limits::default());
        assert_eq!(dec.body, br#"{"plaintext":"aGk/"}"#);
    }

    #[test]
    fn response_bytes_are_exact_json() {
        let ring = ring();
        let bytes = |route, body: &[u8]| {
            let request = Request::parse(route, body, &Limits::default()).unwrap();
            String::from_utf8(execute(&request, Some(&ring), &Limits::default()).body).unwrap()
        };
        let enc = bytes(Route::Encrypt, br#"{"plaintext": "aGk="}"#);
        let ct = enc
            .strip_prefix(r#"{"ciphertext":""#)
            .and_then(|rest| rest.strip_suffix(r#"","key_version":1}"#))
            .unwrap_or_else(|| panic!("{enc}"));
        assert!(ct.starts_with("ssm:v1:"));
        let dec = bytes(
            Route::Decrypt,
            format!(r#"{{"ciphertext": "{ct}"}}"#).as_bytes(),
        );
        assert_eq!(dec, r#"{"plaintext":"aGk="}"#);
        let batch = bytes(
            Route::Decrypt,
            format!(r#"{{"batch": [{{"ciphertext": "{ct}"}}, {{"ciphertext": "x"}}]}}"#).as_bytes(),
        );
        assert_eq!(
            batch,
            format!(
                r#"{{"batch_results":[{{"plaintext":"aGk="}},{}]}}"#,
                String::from_utf8(ApiError::decryption_failed().json_body()).unwrap()
            )
        );
        assert_eq!(
            String::from_utf8(ApiError::bad_request("a \"quoted\"\nline").json_body()).unwrap(),
            r#"{"error":{"code":"invalid_request","message":"a \"quoted\"\nline"}}"#
        );
        assert_eq!(
            bytes(Route::Version, b""),
            format!(r#"{{"version":"{}"}}"#, env!("CARGO_PKG_VERSION"))
        );
        // Text that JSON must escape comes back intact through wrap and unwrap.
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} é 🗝";
        let wrapped = call(&ring, Route::Wrap, json!({ "text": tricky }));
        let unwrapped = call(
            &ring,
            Route::Unwrap,
            json!({"cipher": wrapped.body["cipher"]}),
        );
        assert_eq!(unwrapped.body, json!({ "text": tricky }));
        let key = call(&ring, Route::DataKey, json!({}));
        // Sorted: workspace builds turn on serde_json's `preserve_order`, so the map's own
        // order depends on which crates are built together.
        let mut fields: Vec<&String> = key.body.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["ciphertext", "key_version", "plaintext"]);
    }

    #[test]
    fn request_level_errors() {
        let ring = ring();
        let cases = [
            (
                Route::Encrypt,
                json!({"plaintext": "aGk=", "extra": 1}),
                400,
                "unknown field",
            ),
            (Route::Encrypt, json!({}), 400, "missing `plaintext`"),
            (
                Route::Encrypt,
                json!({"plaintext": "aGk=", "batch": []}),
                400,
                "not both",
            ),
            (Route::Encrypt, json!({"batch": []}), 400, "empty"),
            (
                Route::Encrypt,
                json!({"batch": [{"plaintext": "aGk="}], "context": ""}),
                400,
                "inside each",
            ),
            (
                Route::Encrypt,
                json!({"plaintext": "not base64!"}),
                400,
                "base64",
            ),
            (Route::Encrypt, json!({"plaintext": 5}), 400, "invalid type"),
            (
                Route::Decrypt,
                json!({"ciphertext": "ssm:v1:AAAA"}),
                400,
                "could not be decrypted",
            ),
            (
                Route::Decrypt,
                json!({"ciphertext": "garbage"}),
                400,
                "could not be decrypted",
            ),
            (Route::Wrap, json!({"cipher": "x"}), 400, "unknown field"),
        ];
        for (route, body, status, needle) in cases {
            let res = call(&ring, route, body.clone());
            assert_eq!(res.status, status, "{body}: {:?}", res.body);
            let message = res.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{body}: {message}");
        }
        let bad = Request::parse(Route::Encrypt, b"{not json", &Limits::default()).unwrap_err();
        assert_eq!((bad.status, bad.code.as_str()), (400, "invalid_request"));
    }

    #[test]
    fn limits_give_413() {
        let ring = ring();
        let limits = Limits {
            max_plaintext: 4,
            max_batch: 2,
        };
        let res = call_with(
            &ring,
            Route::Encrypt,
            json!({"plaintext": b64(b"12345")}),
            &limits,
        );
        assert_eq!(
            (res.status, res.body["error"]["code"].as_str()),
            (413, Some("payload_too_large"))
        );
        let items = json!([{"plaintext": "YQ=="}, {"plaintext": "YQ=="}, {"plaintext": "YQ=="}]);
        let res = call_with(&ring, Route::Encrypt, json!({ "batch": items }), &limits);
        assert_eq!(
            (res.status, res.body["error"]["code"].as_str()),
            (413, Some("batch_too_large"))
        );
        assert!(Limits::default().max_body() >= (1 << 20) * 4 / 3);
    }

    #[test]
    fn batch_keeps_order_and_reports_per_item_errors() {
        let ring = ring();
        let good = call(&ring, Route::Encrypt, json!({"plaintext": b64(b"one")}));
        let ct = good.body["ciphertext"].clone();
        let res = call(
            &ring,
            Route::Decrypt,
            json!({"batch": [
                {"ciphertext": ct},
                {"ciphertext": "ssm:v1:broken"},
                {"ciphertext": ct, "context": "not base64!"},
                {"ciphertext": ct},
            ]}),
        );
        assert_eq!(res.status, 200);
        let results = res.body["batch_results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0], json!({"plaintext": b64(b"one")}));
        assert_eq!(results[1]["error"]["code"], "decryption_failed");
        assert_eq!(results[2]["error"]["code"], "invalid_request");
        assert_eq!(results[3], results[0]);
        assert_eq!((res.summary.items, res.summary.failed_items), (4, 2));
    }

    #[test]
    fn rewrap_moves_to_primary_and_never_returns_plaintext() {
        let mut ring = ring();
        let old = call(
            &ring,
            Route::Encrypt,
            json!({"plaintext": b64(b"data"), "context": "Yw=="}),
        );
        ring.rotate("2026-11-29T00:00:00Z".parse().unwrap())
            .unwrap();
        let res = call(
            &ring,
            Route::Rewrap,
            json!({"ciphertext": old.body["ciphertext"], "context": "Yw=="}),
        );
        assert_eq!(res.status, 200, "{:?}", res.body);
        assert_eq!(res.body["key_version"], 2);
        assert!(res.body.get("plaintext").is_none());
        assert!(!res.body.to_string().contains(&b64(b"data")));
        let dec = call(
            &ring,
            Route::Decrypt,
            json!({"ciphertext": res.body["ciphertext"], "context": "Yw=="}),
        );
        assert_eq!(dec.body["plaintext"], b64(b"data"));
    }

    #[test]
    fn legacy_ciphertexts_unwrap_and_rewrap_only_with_a_legacy_key() {
        let ring = ring();
        let legacy = LegacyKey::new("0123456789abcdef0123456789abcdef".into()).unwrap();
        let old = legacy.encrypt_for_tests([9; 16], b"from python");
        let res = call(&ring, Route::Unwrap, json!({"cipher": old}));
        assert_eq!(res.body, json!({"text": "from python"}));
        let up = call(&ring, Route::Rewrap, json!({"ciphertext": old}));
        assert!(
            up.body["ciphertext"]
                .as_str()
                .unwrap()
                .starts_with("ssm:v1:")
        );
        assert_eq!(up.summary.legacy_items, 1);
        let modern = Keyring::generate("2026-11-28T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(
            call(&modern, Route::Unwrap, json!({"cipher": old})).status,
            400
        );
    }

    #[test]
    fn wrap_unwrap_original_shapes() {
        let ring = ring();
        let wrapped = call(&ring, Route::Wrap, json!({"text": "héllo"}));
        let cipher = wrapped.body["cipher"].as_str().unwrap();
        assert!(cipher.starts_with("ssm:v1:"));
        let res = call(&ring, Route::Unwrap, json!({"cipher": cipher}));
        assert_eq!(res.body, json!({"text": "héllo"}));
        let binary = call(
            &ring,
            Route::Encrypt,
            json!({"plaintext": b64(&[0xff, 0xfe])}),
        );
        let res = call(
            &ring,
            Route::Unwrap,
            json!({"cipher": binary.body["ciphertext"]}),
        );
        assert_eq!(
            (res.status, res.body["error"]["code"].as_str()),
            (422, Some("not_text"))
        );
    }

    #[test]
    fn retired_versions_say_so() {
        let mut ring = ring();
        let old = call(&ring, Route::Encrypt, json!({"plaintext": "YQ=="}));
        ring.rotate("2026-11-29T00:00:00Z".parse().unwrap())
            .unwrap();
        ring.set_min_decryption_version(KeyVersion::new(2).unwrap())
            .unwrap();
        let res = call(
            &ring,
            Route::Decrypt,
            json!({"ciphertext": old.body["ciphertext"]}),
        );
        assert_eq!(res.status, 400);
        assert_eq!(res.body["error"]["code"], "key_version_retired");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("min_decryption_version 2")
        );
    }

    #[test]
    fn datakey_and_keys() {
        let ring = ring();
        let res = call(&ring, Route::DataKey, json!({"context": "Yw=="}));
        let key = STANDARD
            .decode(res.body["plaintext"].as_str().unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        let dec = call(
            &ring,
            Route::Decrypt,
            json!({"ciphertext": res.body["ciphertext"], "context": "Yw=="}),
        );
        assert_eq!(dec.body["plaintext"], res.body["plaintext"]);
        let wrapped = call(&ring, Route::DataKey, json!({"wrapped_only": true}));
        assert!(wrapped.body.get("plaintext").is_none());
        let empty = execute(
            &Request::parse(Route::DataKey, b"", &Limits::default()).unwrap(),
            Some(&ring),
            &Limits::default(),
        );
        assert_eq!(empty.status, 200);
        let keys = call(&ring, Route::Keys, Value::Null);
        assert_eq!(keys.body["primary_version"], 1);
        assert_eq!(keys.body["legacy_key"], true);
        assert!(!keys.body.to_string().contains("material"));
    }

    #[test]
    fn uninitialised_keyring_is_503_and_newest_version_is_found() {
        let empty = Keyring::empty();
        let res = call(&empty, Route::Encrypt, json!({"plaintext": "YQ=="}));
        assert_eq!(
            (res.status, res.body["error"]["code"].as_str()),
            (503, Some("keyring_uninitialised"))
        );
        let req = Request::parse(
            Route::Decrypt,
            br#"{"batch": [{"ciphertext": "ssm:v3:AA=="}, {"ciphertext": "ssm:v7:AA=="}, {"ciphertext": "x"}]}"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(req.newest_named_version(), KeyVersion::new(7));
        assert_eq!(execute(&req, None, &Limits::default()).status, 503);
    }
}
