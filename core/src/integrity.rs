//! Integrity: CloudTrail event classification against the stack's own resources.
