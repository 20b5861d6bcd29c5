//! Client for the Serverless SSM Crypto API.
//!
//! Every route is typed: bytes go in and come out, the base64 and JSON of the wire are handled
//! here. Requests are signed with SigV4 for API Gateway (`execute-api`) with credentials from the
//! default AWS chain (or any provider the caller passes), retried with exponential backoff and
//! full jitter when the service throttles or is briefly unavailable, and answered with
//! [`ClientError`]s that tell an IAM denial from an unknown key from the API's own refusals.
//!
//! ```no_run
//! # async fn example() -> Result<(), ssm_client::ClientError> {
//! use ssm_client::{ClientConfig, CryptoClient, ExposeSecret, KeyName};
//!
//! let config = ClientConfig::new("https://a1b2c3.execute-api.eu-west-1.amazonaws.com", "eu-west-1")?;
//! let client = CryptoClient::from_default_chain(config).await?;
//! let payments = KeyName::parse("payments")?;
//! let sealed = client.key(&payments).encrypt(b"4111 1111 1111 1111", b"order=42").await?;
//! let opened = client.key(&payments).decrypt(&sealed.ciphertext, b"order=42").await?;
//! assert_eq!(opened.expose_secret(), b"4111 1111 1111 1111");
//! # Ok(()) }
//! ```
//!
//! The crate depends on no other crate of this workspace: what a caller links is the wire types,
//! the signer and the HTTP client, not the service's cryptography.

mod client;
mod error;
mod key_name;
mod retry;
mod secret;
mod wire;

#[cfg(feature = "cli")]
pub mod cli;

pub use client::{
    ClientConfig, CryptoClient, Key, Legacy, Named, Original, Routes, SIGNING_SERVICE,
    api_id_of_endpoint, region_of_endpoint,
};
pub use error::{ApiError, ClientError};
pub use key_name::{InvalidKeyName, KeyName};
pub use retry::RetryPolicy;
pub use secrecy::ExposeSecret;
pub use secret::SecretBytes;
pub use wire::{
    CiphertextItem, DataKey, ItemResult, KeyInfo, KeyVersionInfo, Mac, MacItem, PlaintextItem,
    Sealed,
};
