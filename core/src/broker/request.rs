//! What a token request may name: a repository in GitHub's grammar and permissions GitHub knows;
//! and whether GitHub granted exactly that.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated `owner/name`, compared case-insensitively as GitHub does.
///
/// GitHub's grammar: the owner is 1–39 letters, digits or `-`; the name 1–100 letters, digits,
/// `.`, `_` or `-`, and not `.` or `..`. Anything else is refused before it is used or logged, so
/// a validated name is safe to print as is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName {
    owner: String,
    name: String,
}

/// Why a token request is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "repository must be \"owner/name\": owner of letters, digits and '-' (at most 39), name of letters, digits, '.', '_' and '-' (at most 100)"
    )]
    Repository,
    #[error("permissions must name at least one permission")]
    NoPermissions,
    #[error("permission {0:?} is not a GitHub permission name")]
    PermissionName(String),
    #[error("permission level {0:?} must be read, write or admin")]
    PermissionLevel(String),
    #[error(
        "rejected_token_sha256 must be 64 lowercase hex digits: the SHA-256 of the rejected token"
    )]
    RejectedTokenDigest,
}

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let (owner, name) = s.split_once('/').ok_or(RequestError::Repository)?;
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let name_ok = (1..=100).contains(&name.len())
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !owner_ok || !name_ok {
            return Err(RequestError::Repository);
        }
        Ok(Self {
            owner: owner.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// GitHub permission levels, ordered so that `write` covers `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(RequestError::PermissionLevel(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Requested or granted permissions, validated: name → level.
pub type Permissions = BTreeMap<String, Level>;

/// Validates the permission map of a request (names are `snake_case` ASCII, levels known).
pub fn parse_permissions(raw: &BTreeMap<String, String>) -> Result<Permissions, RequestError> {
    if raw.is_empty() {
        return Err(RequestError::NoPermissions);
    }
    raw.iter()
        .map(|(name, level)| {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !ok {
                return Err(RequestError::PermissionName(name.clone()));
            }
            Ok((name.clone(), Level::parse(level)?))
        })
        .collect()
}

/// Renders validated permissions back to GitHub's wire shape.
pub fn permissions_to_wire(perms: &Permissions) -> BTreeMap<String, String> {
    perms
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
        .collect()
}

/// The value of the signed scope header ([`super::SCOPE_HEADER`]) for a token request: the
/// repository (lowercase, as [`RepoName`] prints it) and the permissions in name order,
/// `acme/infra contents=write,metadata=read`. Built only from validated parts, so the client
/// and the broker spell one request's scope the same way.
pub fn signed_scope(repo: &RepoName, permissions: &Permissions) -> String {
    let perms: Vec<String> = permissions
        .iter()
        .map(|(name, level)| format!("{name}={}", level.as_str()))
        .collect();
    format!("{repo} {}", perms.join(","))
}

/// Whether GitHub granted exactly what was asked: every requested permission at its level and
/// nothing more, except `metadata: read`, which GitHub adds to every installation token.
pub fn scope_matches(requested: &Permissions, granted: &BTreeMap<String, String>) -> bool {
    let asked = requested
        .iter()
        .all(|(name, level)| granted.get(name).map(String::as_str) == Some(level.as_str()));
    let nothing_more = granted.iter().all(|(name, level)| {
        requested.contains_key(name) || (name == "metadata" && level == "read")
    });
    asked && nothing_more
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use crate::broker::*;
    use std::collections::BTreeMap;

    #[test]
    fn request_validation() {
        assert!(RepoName::parse("acme/infra").is_ok());
        for bad in [
            "acme",
            "acme/",
            "/infra",
            "a/b/c",
            "acme/..",
            "ac me/x",
            "acme/inf?ra",
        ] {
            assert_eq!(RepoName::parse(bad), Err(RequestError::Repository), "{bad}");
        }
        assert_eq!(
            parse_permissions(&BTreeMap::new()),
            Err(RequestError::NoPermissions)
        );
        assert!(matches!(
            parse_permissions(&BTreeMap::from([("contents".into(), "owner".into())])),
            Err(RequestError::PermissionLevel(_))
        ));
        assert!(matches!(
            parse_permissions(&BTreeMap::from([("Contents".into(), "read".into())])),
            Err(RequestError::PermissionName(_))
        ));
    }

    #[test]
    fn scope_must_match_exactly() {
        let want = perms(&[("contents", "write")]);
        assert!(scope_matches(
            &want,
            &BTreeMap::from([("contents".into(), "write".into())])
        ));
        assert!(!scope_matches(
            &want,
            &BTreeMap::from([("contents".into(), "read".into())])
        ));
        assert!(!scope_matches(
            &want,
            &BTreeMap::from([
                ("contents".into(), "write".into()),
                ("issues".into(), "write".into())
            ])
        ));
        // GitHub adds metadata:read to every token; anything above it is still a mismatch.
        let with_metadata = |level: &str| {
            BTreeMap::from([
                ("contents".into(), "write".into()),
                ("metadata".into(), level.into()),
            ])
        };
        assert!(scope_matches(&want, &with_metadata("read")));
        assert!(!scope_matches(&want, &with_metadata("write")));
        assert!(!scope_matches(&want, &BTreeMap::new()));
    }

    #[test]
    fn repository_grammar_is_githubs_and_escaping_keeps_one_line() {
        for good in ["acme/infra", "a/b", "Acme-Corp/.github", "x/a_b.c-d"] {
            assert!(RepoName::parse(good).is_ok(), "{good}");
        }
        let forged = "acme/x\n2026-11-28T01:00:00Z  INFO audit: decision=\"issued\"";
        for bad in [
            forged,
            "ac_me/infra",
            "ac.me/infra",
            &format!("{}/x", "a".repeat(40)),
            &format!("a/{}", "x".repeat(101)),
            "acme/.",
            "acme/\u{1b}[31mred",
        ] {
            assert_eq!(RepoName::parse(bad), Err(RequestError::Repository), "{bad}");
        }
        let shown = escaped(forged, 200);
        assert!(!shown.contains('\n') && shown.contains("\\n"), "{shown}");
        assert!(!escaped("\u{1b}[31m", 10).contains('\u{1b}'));
        assert_eq!(escaped("abcdef", 3), "\"abc\"…");
    }
}
