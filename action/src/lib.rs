//! Deploy Action: OIDC credentials, CDK asset publishing, CloudFormation change sets.
