//! Secrets Manager rotation Lambda for the keyring, and the ssm-keyring operator CLI.
