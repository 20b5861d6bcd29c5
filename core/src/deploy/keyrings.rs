//! Keyrings a change set must never remove or replace.
//!
//! A keyring secret holds every version of one key (issue 21: one per named key, `default`
//! included): without it, nothing that key encrypted can be decrypted again, and its KMS key is
//! what decrypts the secret. The stack retains both (`DeletionPolicy: Retain`), so a removal
//! leaves the data; but the key's routes, rotation and resource policy would go with the template,
//! and a key declared again under the same name would get a new, empty keyring. So the Action
//! refuses any change set that removes or replaces one, in every mode (a plan shows it on the pull
//! request), and names what to do instead.
//!
//! A keyring resource is recognized by its logical id: an `AWS::SecretsManager::Secret` or
//! `AWS::KMS::Key` whose logical id starts with `Keyring` (cdk/lib/keys.ts names them so). Not a
//! template marker: a removed resource is absent from the new template, and a marker in the
//! deployed one could be dropped by one deployment before another removes the resource; a
//! deployed resource's logical id cannot change without the change set showing its removal.

use super::report::{Change, ChangeAction, Replacement};

/// The resource types that hold or protect a keyring.
pub const KEYRING_RESOURCE_TYPES: [&str; 2] = ["AWS::SecretsManager::Secret", "AWS::KMS::Key"];
/// The logical id prefix of every keyring secret and keyring KMS key (cdk/lib/keys.ts).
pub const KEYRING_LOGICAL_ID_PREFIX: &str = "Keyring";

/// Whether a resource of the stack is a keyring secret or a keyring's KMS key.
pub fn is_keyring_resource(logical_id: &str, resource_type: &str) -> bool {
    KEYRING_RESOURCE_TYPES.contains(&resource_type)
        && logical_id.starts_with(KEYRING_LOGICAL_ID_PREFIX)
}

/// What a refused change would do to a keyring resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringHarm {
    /// `Remove`: the resource leaves the stack (retained, but orphaned).
    Removal,
    /// `Modify` with `Replacement: True` (or `Conditional`): a new, empty resource in its place.
    Replacement,
}

/// A change to a keyring resource the Action refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedKeyringChange {
    pub logical_id: String,
    pub resource_type: String,
    pub harm: KeyringHarm,
}

impl RefusedKeyringChange {
    fn what(&self) -> &'static str {
        match (self.resource_type.as_str(), self.harm) {
            ("AWS::KMS::Key", KeyringHarm::Removal) => "removes the KMS key of the keyring",
            ("AWS::KMS::Key", KeyringHarm::Replacement) => "replaces the KMS key of the keyring",
            (_, KeyringHarm::Removal) => "removes the keyring secret",
            (_, KeyringHarm::Replacement) => "replaces the keyring secret",
        }
    }

    /// The `::error` annotation: title and message.
    pub fn annotation(&self, stack: &str) -> (String, String) {
        (
            format!("keyring change refused: {stack}/{}", self.logical_id),
            format!(
                "The change set {} {stack}/{} ({}). {REMEDY}",
                self.what(),
                self.logical_id,
                self.resource_type
            ),
        )
    }
}

/// What the operator does instead, in every refusal.
pub const REMEDY: &str = "A keyring secret holds every version of its key: without it (or the KMS key that decrypts it) \
nothing the key encrypted can be decrypted again, and a key declared again would start an empty keyring. Keep the key \
declared in the `keys` setting (cdk.json), and if it is in a replacement, undo the change that replaces it. To stop a \
key's use, remove its callers' execute-api:Invoke permissions in IAM (its routes stay, answering 403). To destroy a key \
for good: rewrap or re-encrypt its data under another key, then have an administrator deploy the removal with their own \
credentials (`cdk deploy`; the secret and the KMS key are retained), and schedule their deletion by hand \
(`aws secretsmanager delete-secret --recovery-window-in-days 30`, `aws kms schedule-key-deletion`).";

/// The changes of a change set that would remove or replace a keyring resource.
pub fn refused_keyring_changes(changes: &[Change]) -> Vec<RefusedKeyringChange> {
    changes
        .iter()
        .filter(|c| is_keyring_resource(&c.logical_id, &c.resource_type))
        .filter_map(|c| {
            let harm = match (c.action, c.replacement) {
                (ChangeAction::Remove, _) => KeyringHarm::Removal,
                (ChangeAction::Modify, Replacement::True | Replacement::Conditional) => {
                    KeyringHarm::Replacement
                }
                _ => return None,
            };
            Some(RefusedKeyringChange {
                logical_id: c.logical_id.clone(),
                resource_type: c.resource_type.clone(),
                harm,
            })
        })
        .collect()
}

/// The error that stops the run: every refused change of the stack, then the remedy.
pub fn refusal(stack: &str, refused: &[RefusedKeyringChange]) -> String {
    let list: Vec<String> = refused
        .iter()
        .map(|r| format!("{} {} ({})", r.what(), r.logical_id, r.resource_type))
        .collect();
    format!(
        "stack {stack}: refusing a change set that {}; nothing was executed. {REMEDY}",
        list.join(", and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, ty: &str, action: ChangeAction, replacement: Replacement) -> Change {
        Change {
            action,
            logical_id: id.into(),
            resource_type: ty.into(),
            replacement,
            properties: Vec::new(),
        }
    }

    const SECRET: &str = "AWS::SecretsManager::Secret";
    const KEY: &str = "AWS::KMS::Key";

    #[test]
    fn keyring_resources_are_keyring_secrets_and_kms_keys_by_logical_id() {
        // The ids cdk/lib/serverless-stack.ts gives: the default key's, then a named key's.
        for (id, ty) in [
            ("Keyring5277DB2C", SECRET),
            ("KeyringKey", KEY),
            ("KeyringpaymentsSecret9F7BE255", SECRET),
            ("KeyringpaymentsKey02387C8E", KEY),
        ] {
            assert!(is_keyring_resource(id, ty), "{id}");
        }
        // The policy and the schedule may change (a deploy declares them again); other secrets
        // (the GitHub App's) are not keyrings.
        assert!(!is_keyring_resource(
            "KeyringPolicy",
            "AWS::SecretsManager::ResourcePolicy"
        ));
        assert!(!is_keyring_resource(
            "KeyringRotation",
            "AWS::SecretsManager::RotationSchedule"
        ));
        assert!(!is_keyring_resource("AppPrivateKey1A2B3C4D", SECRET));
        assert!(!is_keyring_resource("keyringLower", SECRET));
    }

    /// A change set as an operator removing `payments` from `keys` gets it (recorded shape:
    /// DescribeChangeSet's ResourceChange list, as `deploy::convert_change` reads it).
    fn removing_payments() -> Vec<Change> {
        vec![
            change(
                "KeyringpaymentsSecret9F7BE255",
                SECRET,
                ChangeAction::Remove,
                Replacement::NotApplicable,
            ),
            change(
                "KeyringpaymentsKey02387C8E",
                KEY,
                ChangeAction::Remove,
                Replacement::NotApplicable,
            ),
            change(
                "KeyringpaymentsPolicy7AB97F4C",
                "AWS::SecretsManager::ResourcePolicy",
                ChangeAction::Remove,
                Replacement::NotApplicable,
            ),
            change(
                "CryptoFunction63BD24A0",
                "AWS::Lambda::Function",
                ChangeAction::Modify,
                Replacement::False,
            ),
        ]
    }

    #[test]
    fn removing_a_key_is_refused_for_its_secret_and_its_kms_key() {
        let refused = refused_keyring_changes(&removing_payments());
        assert_eq!(
            refused,
            [
                RefusedKeyringChange {
                    logical_id: "KeyringpaymentsSecret9F7BE255".into(),
                    resource_type: SECRET.into(),
                    harm: KeyringHarm::Removal
                },
                RefusedKeyringChange {
                    logical_id: "KeyringpaymentsKey02387C8E".into(),
                    resource_type: KEY.into(),
                    harm: KeyringHarm::Removal
                },
            ]
        );
        let message = refusal("SsmServerless", &refused);
        assert!(
            message.contains("removes the keyring secret KeyringpaymentsSecret9F7BE255"),
            "{message}"
        );
        assert!(
            message.contains("removes the KMS key of the keyring KeyringpaymentsKey02387C8E"),
            "{message}"
        );
        for hint in ["Keep the key declared", "execute-api:Invoke", "re-encrypt"] {
            assert!(message.contains(hint), "{hint}: {message}");
        }
        let (title, text) = refused[0].annotation("SsmServerless");
        assert_eq!(
            title,
            "keyring change refused: SsmServerless/KeyringpaymentsSecret9F7BE255"
        );
        assert!(text.contains("removes the keyring secret"), "{text}");
    }

    #[test]
    fn replacing_a_keyring_is_refused_and_updating_one_in_place_is_not() {
        let changes = [
            change(
                "Keyring5277DB2C",
                SECRET,
                ChangeAction::Modify,
                Replacement::True,
            ),
            change(
                "KeyringKey",
                KEY,
                ChangeAction::Modify,
                Replacement::Conditional,
            ),
            change(
                "KeyringordersSecretF0051C2F",
                SECRET,
                ChangeAction::Modify,
                Replacement::False,
            ),
            change(
                "KeyringordersKeyDBA205F5",
                KEY,
                ChangeAction::Add,
                Replacement::NotApplicable,
            ),
        ];
        let refused = refused_keyring_changes(&changes);
        assert_eq!(
            refused.iter().map(|r| r.harm).collect::<Vec<_>>(),
            [KeyringHarm::Replacement, KeyringHarm::Replacement]
        );
        assert!(refusal("S", &refused).contains("replaces the keyring secret Keyring5277DB2C"));
        assert!(refused_keyring_changes(&changes[2..]).is_empty());
    }

    #[test]
    fn other_removals_pass() {
        let changes = [change(
            "AppWebhookSecretB2C3D4E5",
            SECRET,
            ChangeAction::Remove,
            Replacement::NotApplicable,
        )];
        assert!(refused_keyring_changes(&changes).is_empty());
    }
}
