//! The Crypto API: routes, wire types and the pure operation behind each route.
//!
//! The Lambda and the local server share this: they match the route, parse the body, make sure
//! the keyring knows every version the request names (the only I/O), then [`execute`] here.
//! The exact shapes are in `docs/openapi.yaml`.
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
use crate::keyring::{Keyring, OpenError, SealError, Sealed};
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
            _ => return None,
        })
    }

    /// The route's path, for logs.
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

/// One item or a batch.
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
}

impl<'a> Request<'a> {
    /// Parses the body for `route`. Request-level problems (bad JSON, unknown fields, both or
    /// neither of the single and batch forms, too many items) are errors here; problems of one
    /// item are reported per item by [`execute`].
    pub fn parse(route: Route, body: &'a [u8], limits: &Limits) -> Result<Self, ApiError> {
        Ok(match route {
            Route::Encrypt => {
                let b: EncryptBody = json(body)?;
                Request::Encrypt(one_or_batch(
                    b.plaintext.map(|plaintext| EncryptItem {
                        plaintext,
                        context: b.context.clone(),
                    }),
                    b.context.is_some(),
                    b.batch,
                    "plaintext",
                    limits,
                )?)
            }
            Route::Decrypt | Route::Rewrap => {
                let b: CiphertextBody = json(body)?;
                let items = one_or_batch(
                    b.ciphertext.map(|ciphertext| CiphertextItem {
                        ciphertext,
                        context: b.context.clone(),
                    }),
                    b.context.is_some(),
                    b.batch,
                    "ciphertext",
                    limits,
                )?;
                if route == Route::Decrypt {
                    Request::Decrypt(items)
                } else {
                    Request::Rewrap(items)
                }
            }
            Route::DataKey if body.iter().all(u8::is_ascii_whitespace) => {
                Request::DataKey(DataKeyRequest::default())
            }
            Route::DataKey => Request::DataKey(json(body)?),
            Route::Keys => Request::Keys,
            Route::Version => Request::Version,
            Route::Wrap => Request::Wrap(json(body)?),
            Route::Unwrap => Request::Unwrap(json(body)?),
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

/// Executes a parsed request against a keyring (`None` only for requests that need none).
pub fn execute(request: &Request<'_>, ring: Option<&Keyring>, limits: &Limits) -> Response {
    let mut summary = Summary::default();
    let mut out = Json(Vec::with_capacity(response_capacity(request)));
    let result = match (request, ring) {
        (Request::Version, _) => {
            out.raw("{\"version\":");
            out.plain_str(env!("CARGO_PKG_VERSION"));
            out.raw("}");
            Ok(())
        }
        (_, None) => Err(ApiError::keyring_unavailable()),
        (Request::Encrypt(items), Some(ring)) => {
            run_items(items, &mut summary, &mut out, |item, s, out| {
                encrypt_item(ring, item, limits, s, out)
            })
        }
        (Request::Decrypt(items), Some(ring)) => {
            run_items(items, &mut summary, &mut out, |item, s, out| {
                decrypt_item(ring, item, s, out)
            })
        }
        (Request::Rewrap(items), Some(ring)) => {
            run_items(items, &mut summary, &mut out, |item, s, out| {
                rewrap_item(ring, item, s, out)
            })
        }
        (Request::DataKey(req), Some(ring)) => data_key(ring, req, &mut summary, &mut out),
        (Request::Keys, Some(ring)) => {
            // Through a Value, so the fields keep the order every other body has.
            let info = serde_json::to_value(ring.info()).unwrap_or_default();
            let _ = serde_json::to_writer(&mut out.0, &info);
            Ok(())
        }
        (Request::Wrap(req), Some(ring)) => {
            seal_within_limit(ring, req.text.as_bytes(), b"", limits, &mut summary).map(|sealed| {
                out.raw("{\"cipher\":");
                out.plain_str(&sealed.ciphertext);
                out.raw("}");
            })
        }
        (Request::Unwrap(req), Some(ring)) => unwrap(ring, req, &mut summary, &mut out),
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

/// Room for the usual answer: an envelope or base64 is about 4/3 of its input.
fn response_capacity(request: &Request<'_>) -> usize {
    let input: usize = match request {
        Request::Encrypt(items) => items.iter().map(|i| i.plaintext.len()).sum(),
        Request::Decrypt(items) | Request::Rewrap(items) => {
            items.iter().map(|i| i.ciphertext.len()).sum()
        }
        Request::Wrap(req) => req.text.len(),
        Request::Unwrap(req) => req.cipher.len(),
        _ => 0,
    };
    input.saturating_add(input / 3).saturating_add(128)
}

/// One item answers with its result or its error (and that error's status); a batch answers
/// 200 with every item's result or error in input order.
fn run_items<T>(
    items: &Items<T>,
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
            out.raw("{\"batch_results\":[");
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
    ring: &Keyring,
    item: &EncryptItem<'_>,
    limits: &Limits,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let plaintext = decode_b64(&item.plaintext, "plaintext")?;
    let context = decode_context(item.context.as_deref())?;
    let sealed = seal_within_limit(ring, plaintext.expose(), context.expose(), limits, summary)?;
    out.sealed(&sealed);
    Ok(())
}

/// Seals `plaintext` under the primary version if it is within the limit, and notes it.
fn seal_within_limit(
    ring: &Keyring,
    plaintext: &[u8],
    context: &[u8],
    limits: &Limits,
    summary: &mut Summary,
) -> Result<Sealed, ApiError> {
    if plaintext.len() > limits.max_plaintext {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "plaintext is {} bytes; the limit is {}",
                plaintext.len(),
                limits.max_plaintext
            ),
        ));
    }
    let sealed = seal_noted(ring, plaintext, context, summary)?;
    summary.bytes_in += plaintext.len();
    Ok(sealed)
}

/// Seals `plaintext` under the primary version and notes the output and the version.
fn seal_noted(
    ring: &Keyring,
    plaintext: &[u8],
    context: &[u8],
    summary: &mut Summary,
) -> Result<Sealed, ApiError> {
    let sealed = ring.encrypt(plaintext, context).map_err(seal_error)?;
    summary.bytes_out += sealed.ciphertext.len();
    summary.note_version(Some(sealed.version));
    Ok(sealed)
}

fn open(
    ring: &Keyring,
    ciphertext: &str,
    context: Option<&str>,
    summary: &mut Summary,
) -> Result<(Plaintext, Plaintext), ApiError> {
    let context = decode_context(context)?;
    let (plaintext, version) = ring
        .decrypt(ciphertext, context.expose())
        .map_err(open_error)?;
    summary.bytes_in += ciphertext.len();
    summary.note_version(version);
    Ok((plaintext, context))
}

fn decrypt_item(
    ring: &Keyring,
    item: &CiphertextItem<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, _) = open(ring, &item.ciphertext, item.context.as_deref(), summary)?;
    summary.bytes_out += plaintext.len();
    out.plaintext(plaintext.expose());
    Ok(())
}

fn rewrap_item(
    ring: &Keyring,
    item: &CiphertextItem<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, context) = open(ring, &item.ciphertext, item.context.as_deref(), summary)?;
    let sealed = seal_noted(ring, plaintext.expose(), context.expose(), summary)?;
    out.sealed(&sealed);
    Ok(())
}

fn data_key(
    ring: &Keyring,
    req: &DataKeyRequest<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let context = decode_context(req.context.as_deref())?;
    let key = KeyMaterial::generate().map_err(|_| {
        ApiError::new(
            503,
            "randomness_unavailable",
            "the random number generator failed",
        )
    })?;
    let sealed = ring
        .encrypt(key.expose(), context.expose())
        .map_err(seal_error)?;
    summary.items = 1;
    summary.bytes_out += KEY_LEN;
    summary.note_version(Some(sealed.version));
    out.raw("{");
    out.sealed_fields(&sealed);
    if !req.wrapped_only {
        out.raw(",\"plaintext\":");
        out.base64(key.expose());
    }
    out.raw("}");
    Ok(())
}

fn unwrap(
    ring: &Keyring,
    req: &UnwrapRequest<'_>,
    summary: &mut Summary,
    out: &mut Json,
) -> Result<(), ApiError> {
    let (plaintext, _) = open(ring, req.cipher.trim(), None, summary)?;
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

fn seal_error(error: SealError) -> ApiError {
    match error {
        SealError::NoPrimary => ApiError::new(503, "keyring_uninitialised", error.to_string()),
        SealError::Encrypt(e) => ApiError::new(503, "encryption_unavailable", e.to_string()),
    }
}

fn open_error(error: OpenError) -> ApiError {
    match error {
        OpenError::Retired { .. } => ApiError::new(400, "key_version_retired", error.to_string()),
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

fn one_or_batch<T>(
    single: Option<T>,
    has_context: bool,
    batch: Option<Vec<T>>,
    field: &str,
    limits: &Limits,
) -> Result<Items<T>, ApiError> {
    match (single, batch) {
        (Some(item), None) => Ok(Items::One(item)),
        (None, Some(_)) if has_context => Err(ApiError::bad_request(
            "`context` goes inside each batch item, not beside `batch`",
        )),
        (None, Some(batch)) if batch.is_empty() => Err(ApiError::bad_request("`batch` is empty")),
        (None, Some(batch)) if batch.len() > limits.max_batch => Err(ApiError::new(
            413,
            "batch_too_large",
            format!(
                "`batch` has {} items; the limit is {}",
                batch.len(),
                limits.max_batch
            ),
        )),
        (None, Some(batch)) => Ok(Items::Batch(batch)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "send either `{field}` or `batch`, not both"
        ))),
        (None, None) => Err(ApiError::bad_request(format!(
            "missing `{field}` (or `batch`)"
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
            Ok(request) => execute(&request, Some(ring), limits),
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
        let fields: Vec<&String> = key.body.as_object().unwrap().keys().collect();
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
