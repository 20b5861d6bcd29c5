//! GitHub webhook signature verification and our own webhook event enum.
