//! Client for the token broker: signs sts:GetCallerIdentity with the caller's AWS credentials.
