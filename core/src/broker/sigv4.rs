//! The strict reading of a SigV4 `Authorization` header, shared with the sandbox's verifier:
//! see [`crate::sigv4::Authorization`].

pub use crate::sigv4::Authorization as SigV4Authorization;
