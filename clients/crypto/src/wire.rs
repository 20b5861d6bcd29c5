//! The JSON bodies of the Crypto API (docs/openapi.yaml), as the client writes and reads them.
//!
//! Binary values travel as standard padded base64; the public types here carry bytes, and the
//! private request bodies are built from them. A missing `context` and an empty one are the same
//! to the service, so an empty context is left out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{ApiError, ErrorBody};
use crate::secret::SecretBytes;

/// One plaintext to encrypt, bound to `context` (additional authenticated data; may be empty).
#[derive(Clone, Copy)]
pub struct PlaintextItem<'a> {
    pub plaintext: &'a [u8],
    pub context: &'a [u8],
}

impl std::fmt::Debug for PlaintextItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextItem")
            .field("plaintext_len", &self.plaintext.len())
            .field("context_len", &self.context.len())
            .finish()
    }
}

/// One ciphertext (an envelope) to decrypt or rewrap, with the context it was sealed with.
#[derive(Debug, Clone, Copy)]
pub struct CiphertextItem<'a> {
    pub ciphertext: &'a str,
    pub context: &'a [u8],
}

/// One input and the MAC to check it against.
#[derive(Clone, Copy)]
pub struct MacItem<'a> {
    pub input: &'a [u8],
    pub mac: &'a str,
}

impl std::fmt::Debug for MacItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacItem")
            .field("input_len", &self.input.len())
            .field("mac", &self.mac)
            .finish()
    }
}

/// A sealed envelope (`ssm:vN:...` or `ssm2:NAME:vN:...`) and the key version that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sealed {
    pub ciphertext: String,
    pub key_version: u32,
}

/// A fresh 256-bit data key: wrapped, and in plaintext unless only the wrapped key was asked for.
#[derive(Debug, Clone)]
pub struct DataKey {
    pub ciphertext: String,
    pub key_version: u32,
    pub plaintext: Option<SecretBytes>,
}

/// A key's versions and policy (`GET /v1/keys/{name}`, `GET /v1/keys`); never key material.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct KeyInfo {
    /// Absent on the original `GET /v1/keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub primary_version: Option<u32>,
    pub min_decryption_version: u32,
    pub legacy_key: bool,
    pub versions: Vec<KeyVersionInfo>,
}

/// One version of a keyring.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct KeyVersionInfo {
    pub version: u32,
    pub created_at: String,
    pub decrypts: bool,
    pub primary: bool,
}

/// A versioned MAC, `ssm-mac:NAME:vN:<base64 tag>`, and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mac {
    pub mac: String,
    pub key_version: u32,
}

/// One item of a batch: its result, or the error the service gave that item alone.
pub type ItemResult<T> = Result<T, ApiError>;

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `context`, or nothing when it is empty.
fn context(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| b64(bytes))
}

/// The base64 strings in request bodies may encode plaintext: zeroed once the body is written.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct B64(String);

impl Drop for B64 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Serialize)]
pub(crate) struct EncryptBody {
    plaintext: B64,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
}

impl From<&PlaintextItem<'_>> for EncryptBody {
    fn from(item: &PlaintextItem<'_>) -> Self {
        Self {
            plaintext: B64(b64(item.plaintext)),
            context: context(item.context),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct CiphertextBody<'a> {
    ciphertext: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
}

impl<'a> From<&CiphertextItem<'a>> for CiphertextBody<'a> {
    fn from(item: &CiphertextItem<'a>) -> Self {
        Self {
            ciphertext: item.ciphertext,
            context: context(item.context),
        }
    }
}

/// `{"batch": [...]}`.
#[derive(Serialize)]
pub(crate) struct BatchBody<T> {
    pub batch: Vec<T>,
}

#[derive(Serialize)]
pub(crate) struct DataKeyBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    wrapped_only: bool,
}

impl DataKeyBody {
    pub fn new(context_bytes: &[u8], wrapped_only: bool) -> Self {
        Self {
            context: context(context_bytes),
            wrapped_only,
        }
    }
}

/// `{"items": [...]}`: the MAC routes' batch form.
#[derive(Serialize)]
pub(crate) struct ItemsBody<T> {
    pub items: Vec<T>,
}

#[derive(Serialize)]
pub(crate) struct HmacBody {
    input: B64,
}

impl HmacBody {
    pub fn new(input: &[u8]) -> Self {
        Self {
            input: B64(b64(input)),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct VerifyBody<'a> {
    input: B64,
    mac: &'a str,
}

impl<'a> VerifyBody<'a> {
    pub fn new(input: &[u8], mac: &'a str) -> Self {
        Self {
            input: B64(b64(input)),
            mac,
        }
    }
}

/// The original sample's `POST /wrap {"text"}`.
#[derive(Serialize)]
pub(crate) struct WrapBody<'a> {
    pub text: &'a str,
}

/// The original sample's `POST /unwrap {"cipher"}`.
#[derive(Serialize)]
pub(crate) struct UnwrapBody<'a> {
    pub cipher: &'a str,
}

/// `{"plaintext": "<base64>"}`, zeroed once decoded.
#[derive(Deserialize)]
pub(crate) struct Opened {
    plaintext: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

impl Opened {
    pub fn decode(&self) -> Result<SecretBytes, String> {
        decode_secret(&self.plaintext)
    }
}

#[derive(Deserialize)]
pub(crate) struct DataKeyBodyOut {
    ciphertext: String,
    key_version: u32,
    #[serde(default)]
    plaintext: Option<String>,
}

impl Drop for DataKeyBodyOut {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

impl DataKeyBodyOut {
    pub fn decode(&self) -> Result<DataKey, String> {
        Ok(DataKey {
            ciphertext: self.ciphertext.clone(),
            key_version: self.key_version,
            plaintext: self.plaintext.as_deref().map(decode_secret).transpose()?,
        })
    }
}

fn decode_secret(text: &str) -> Result<SecretBytes, String> {
    STANDARD
        .decode(text)
        .map(SecretBytes::from)
        .map_err(|_| "`plaintext` is not valid base64".to_owned())
}

#[derive(Deserialize)]
pub(crate) struct Verified {
    pub valid: bool,
}

#[derive(Deserialize)]
pub(crate) struct Wrapped {
    pub cipher: String,
}

#[derive(Deserialize)]
pub(crate) struct Unwrapped {
    pub text: String,
}

impl Drop for Unwrapped {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

#[derive(Deserialize)]
pub(crate) struct Version {
    pub version: String,
}

/// `{"items": [...]}`: the MAC routes' batch answer, each entry a result or `{"error": {...}}`.
#[derive(Deserialize)]
pub(crate) struct ItemsResults<T> {
    pub items: Vec<BatchEntry<T>>,
}

/// `{"batch_results": [...]}`: each entry a result or `{"error": {...}}`.
#[derive(Deserialize)]
pub(crate) struct BatchResults<T> {
    pub batch_results: Vec<BatchEntry<T>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum BatchEntry<T> {
    Failed(ErrorBody),
    Done(T),
}
