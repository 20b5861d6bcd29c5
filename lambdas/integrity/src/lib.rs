//! Integrity Lambda: out-of-band change classification, drift sweep, repository_dispatch.
