//! Token broker protocol: request/response types shared by the App and its clients, the checks
//! on the caller's signed `sts:GetCallerIdentity` request, and the policy.
//!
//! The caller proves its AWS identity the way Vault's AWS IAM auth does: it signs a
//! `GetCallerIdentity` request with its own credentials and hands the signed request (method, URL,
//! headers, body) to the broker, which forwards it to STS and reads the ARN from the answer. The
//! request is bound to this broker by the [`AUDIENCE_HEADER`], which must be covered by the
//! signature, and kept fresh by `X-Amz-Date`. Everything here is pure: the App does the I/O.
//!
//! What the broker checks is exactly what it forwards: every header name appears once, the
//! `Authorization` header has exactly one `Credential`, `SignedHeaders` and `Signature`, and the
//! request sent to STS carries an `Authorization` rebuilt from those three parts and only the
//! signed headers, to an STS endpoint of the broker's own allowlist.
//!
//! The parts, each deciding one thing:
//! - [`wire`]: the JSON bodies of `POST /v1/tokens` (request, response, error) and the token types;
//! - [`request`]: what a token request may name (repository grammar, permissions, granted scope);
//! - [`sts_endpoint`]: which STS endpoints an identity request may be signed for;
//! - [`sigv4`]: the strict reading of a SigV4 `Authorization` header (from [`crate::sigv4`]);
//! - [`identity`]: whether a signed identity request is acceptable, and what is forwarded to STS;
//! - [`principal`]: the caller as the policy sees it, from the ARN STS returned;
//! - [`policy`]: which principal may get which repository and permissions;
//! - [`expiry`]: how long the App's JWT and cached tokens live.

pub mod expiry;
pub mod identity;
pub mod policy;
pub mod principal;
pub mod request;
pub mod sigv4;
pub mod sts_endpoint;
pub mod wire;

#[cfg(test)]
mod test_support;

pub use expiry::*;
pub use identity::*;
pub use policy::*;
pub use principal::*;
pub use request::*;
pub use sigv4::*;
pub use sts_endpoint::*;
pub use wire::*;
