//! GitHub App: webhook receiver and IAM-authenticated installation-token broker.
