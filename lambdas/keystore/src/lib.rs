//! Keyring sources (Secrets Manager, file) with a TTL cache and rate-limited early refresh.
