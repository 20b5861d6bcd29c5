//! The sweep's decision: which CloudFormation drift rows and code checks are findings.

use super::payload::Finding;
use super::resources::StackResource;

/// CloudFormation's `StackResourceDriftStatus`, converted at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftStatus {
    Modified,
    Deleted,
    InSync,
    NotChecked,
    Other(String),
}

impl DriftStatus {
    pub fn parse(status: &str) -> DriftStatus {
        match status {
            "MODIFIED" => DriftStatus::Modified,
            "DELETED" => DriftStatus::Deleted,
            "IN_SYNC" => DriftStatus::InSync,
            "NOT_CHECKED" => DriftStatus::NotChecked,
            other => DriftStatus::Other(other.to_owned()),
        }
    }
}

/// A function's deployed `CodeSha256` beside the one its deployed template records
/// ([`super::template`]); `None` when the template records none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeCheck {
    pub resource: StackResource,
    pub expected_sha256: Option<String>,
    pub deployed_sha256: String,
}

/// Findings of one sweep: modified and deleted resources, functions whose code differs from the
/// recorded hash (`code:CodeSha256`) and functions with no recorded hash (`code:unrecorded`:
/// nothing to compare with is escalated, not skipped).
pub fn sweep_findings(drifts: &[(StackResource, DriftStatus)], code: &[CodeCheck]) -> Vec<Finding> {
    let finding = |resource: &StackResource, call: &str| Finding {
        resource: resource.clone(),
        call: call.to_owned(),
        caller: None,
        time: None,
        event_id: None,
    };
    let drifted = drifts.iter().filter_map(|(resource, status)| match status {
        DriftStatus::Modified => Some(finding(resource, "drift:MODIFIED")),
        DriftStatus::Deleted => Some(finding(resource, "drift:DELETED")),
        _ => None,
    });
    let code_changed = code.iter().filter_map(|c| match &c.expected_sha256 {
        None => Some(finding(&c.resource, "code:unrecorded")),
        Some(expected) if *expected != c.deployed_sha256 => {
            Some(finding(&c.resource, "code:CodeSha256"))
        }
        Some(_) => None,
    });
    drifted.chain(code_changed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(id: &str) -> StackResource {
        StackResource {
            logical_id: id.into(),
            physical_id: id.to_lowercase(),
            resource_type: "AWS::Lambda::Function".into(),
        }
    }

    #[test]
    fn only_modified_deleted_and_changed_code_are_findings() {
        let drifts = [
            (res("A"), DriftStatus::parse("MODIFIED")),
            (res("B"), DriftStatus::parse("DELETED")),
            (res("C"), DriftStatus::parse("IN_SYNC")),
            (res("D"), DriftStatus::parse("NOT_CHECKED")),
            (res("E"), DriftStatus::parse("UNKNOWN")),
        ];
        let code = [
            CodeCheck {
                resource: res("F"),
                expected_sha256: Some("x=".into()),
                deployed_sha256: "x=".into(),
            },
            CodeCheck {
                resource: res("G"),
                expected_sha256: Some("x=".into()),
                deployed_sha256: "y=".into(),
            },
            CodeCheck {
                resource: res("H"),
                expected_sha256: None,
                deployed_sha256: "y=".into(),
            },
        ];
        let found: Vec<(String, String)> = sweep_findings(&drifts, &code)
            .into_iter()
            .map(|f| (f.resource.logical_id, f.call))
            .collect();
        assert_eq!(
            found,
            [
                ("A", "drift:MODIFIED"),
                ("B", "drift:DELETED"),
                ("G", "code:CodeSha256"),
                ("H", "code:unrecorded")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }
}
