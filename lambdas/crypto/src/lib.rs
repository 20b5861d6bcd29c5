//! Crypto API Lambda (API Gateway HTTP API) and its local HTTP server.
