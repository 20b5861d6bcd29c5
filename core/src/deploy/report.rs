//! The per-stack report: what a change set will do (or did), what drifted, the stack's outputs
//! and timings, rendered as Markdown for the job summary and the `changes-markdown` output.

use std::fmt::Write as _;

/// What CloudFormation does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeAction {
    Add,
    Modify,
    Remove,
    Import,
    Dynamic,
    /// `SyncWithActual`: a drift-aware change set aligning the template with the live value.
    SyncWithActual,
    Other,
}

impl ChangeAction {
    /// From the API's spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "Add" => Self::Add,
            "Modify" => Self::Modify,
            "Remove" => Self::Remove,
            "Import" => Self::Import,
            "Dynamic" => Self::Dynamic,
            "SyncWithActual" => Self::SyncWithActual,
            _ => Self::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Add => "➕ Add",
            Self::Modify => "✏️ Modify",
            Self::Remove => "🗑️ Remove",
            Self::Import => "📥 Import",
            Self::Dynamic => "❔ Dynamic",
            Self::SyncWithActual => "🔄 Sync",
            Self::Other => "Other",
        }
    }
}

/// Whether a modification replaces the resource (a new physical resource, the old one deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    True,
    Conditional,
    False,
    NotApplicable,
}

impl Replacement {
    /// From the API's spelling (absent for Add/Remove).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("True") => Self::True,
            Some("Conditional") => Self::Conditional,
            Some("False") => Self::False,
            _ => Self::NotApplicable,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::True => "⚠️ **Yes**",
            Self::Conditional => "⚠️ Maybe",
            Self::False => "No",
            Self::NotApplicable => "—",
        }
    }
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    pub replacement: Replacement,
    /// Property paths that change (`Properties.Timeout`), when the change set says.
    pub properties: Vec<String>,
}

/// One drifted property a `REVERT_DRIFT` change set puts back, or a Lambda whose code differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftedProperty {
    pub logical_id: String,
    pub resource_type: String,
    pub property: String,
    /// What the template says (the value being restored).
    pub expected: String,
    /// What was found live.
    pub actual: String,
}

/// CloudWatch namespace of the metrics a run emits when it finds what must page someone.
pub const METRIC_NAMESPACE: &str = "ServerlessSSM/Deploy";
/// Asset objects whose bytes were not the commit's (dimension `Stack`).
pub const METRIC_ASSET_TAMPERED: &str = "AssetTampered";
/// Changes CloudFormation cannot revert, left in place and named (dimension `Stack`).
pub const METRIC_UNREVERTABLE_DRIFT: &str = "UnrevertableDrift";

/// An asset object holding other bytes than the commit builds: someone wrote to the bucket.
/// Publishing puts the commit's bytes back; the run still fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TamperedAsset {
    pub asset_id: String,
    pub bucket: String,
    pub key: String,
    /// Hex SHA-256 of the commit's bytes.
    pub expected_sha256: String,
    /// Hex SHA-256 of what the bucket held.
    pub found_sha256: String,
}

impl TamperedAsset {
    /// The `::error` annotation: title and message.
    pub fn annotation(&self) -> (String, String) {
        (
            format!("asset tampered: s3://{}/{}", self.bucket, self.key),
            format!(
                "s3://{}/{} (asset {}) held bytes with SHA-256 {} instead of this commit's {}. \
                 It was overwritten with the commit's bytes; find who wrote it (CloudTrail PutObject on the assets bucket).",
                self.bucket, self.key, self.asset_id, self.found_sha256, self.expected_sha256
            ),
        )
    }
}

/// What happened to one stack in this run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackReport {
    pub stack_name: String,
    /// `plan`, `apply` or `reconcile`.
    pub mode: String,
    pub change_set_type: String,
    pub changes: Vec<Change>,
    pub drift: Vec<DriftedProperty>,
    pub outputs: Vec<(String, String)>,
    /// Final stack status (after execution), or the status found when planning.
    pub status: String,
    /// Phase name and milliseconds taken.
    pub timings: Vec<(String, u128)>,
    /// Assets uploaded / already present.
    pub assets_uploaded: usize,
    pub assets_skipped: usize,
    /// Failing resources: (logical id, type, reason).
    pub failures: Vec<(String, String, String)>,
    /// Asset objects found overwritten (and restored).
    pub tampered: Vec<TamperedAsset>,
    /// Undeclared additions left in place (see [`super::undeclared`]).
    pub unrevertable: Vec<super::undeclared::UnrevertableDrift>,
}

/// Escapes a value for a Markdown table cell.
pub fn cell(s: &str) -> String {
    let one_line = s.replace("\r\n", " ").replace(['\n', '\r'], " ");
    let escaped = one_line
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if escaped.chars().count() > 120 {
        let cut: String = escaped.chars().take(117).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

fn code(s: &str) -> String {
    if s.is_empty() {
        "—".to_owned()
    } else {
        format!("`{}`", cell(s).replace('`', "'"))
    }
}

impl StackReport {
    /// Whether anything changes (or changed): resources or drift.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || !self.drift.is_empty()
    }

    /// How many replacements the change set contains (certain or conditional).
    pub fn replacements(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.replacement, Replacement::True | Replacement::Conditional))
            .count()
    }

    /// The changes alone: the body of a PR comment.
    pub fn changes_markdown(&self) -> String {
        let mut md = String::new();
        let verb = match self.mode.as_str() {
            "plan" => "would change",
            _ => "changes",
        };
        if self.changes.is_empty() {
            let _ = writeln!(md, "**{}**: no changes.", cell(&self.stack_name));
            return md;
        }
        let _ = writeln!(
            md,
            "**{}** {verb} {} resource(s):\n",
            cell(&self.stack_name),
            self.changes.len()
        );
        let replacing = self.replacements();
        if replacing > 0 {
            let _ = writeln!(
                md,
                "> [!WARNING]\n> {replacing} resource(s) may be **replaced**: a new physical resource is created and the old one deleted (data in it is lost).\n"
            );
        }
        md.push_str(
            "| Action | Logical ID | Type | Replacement | Properties |\n|---|---|---|---|---|\n",
        );
        let mut sorted = self.changes.clone();
        sorted.sort_by(|a, b| {
            a.action
                .cmp(&b.action)
                .then_with(|| a.logical_id.cmp(&b.logical_id))
        });
        for c in &sorted {
            let props = if c.properties.is_empty() {
                "—".to_owned()
            } else {
                cell(&c.properties.join(", "))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                c.action.label(),
                code(&c.logical_id),
                cell(&c.resource_type),
                c.replacement.label(),
                props
            );
        }
        md
    }

    /// The full section for the job summary.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### {} — `{}`\n", cell(&self.stack_name), self.mode);
        let assets = if self.mode == "plan" {
            "not published (plan)".to_owned()
        } else {
            format!(
                "{} uploaded, {} already present",
                self.assets_uploaded, self.assets_skipped
            )
        };
        let _ = writeln!(
            md,
            "Status: `{}` · change set: {} · assets: {assets}\n",
            cell(if self.status.is_empty() {
                "—"
            } else {
                &self.status
            }),
            cell(if self.change_set_type.is_empty() {
                "—"
            } else {
                &self.change_set_type
            }),
        );
        md.push_str(&self.changes_markdown());
        if !self.drift.is_empty() {
            let _ = writeln!(
                md,
                "\n#### Drift reverted\n\n| Logical ID | Type | Property | Expected | Actual |\n|---|---|---|---|---|"
            );
            for d in &self.drift {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    code(&d.logical_id),
                    cell(&d.resource_type),
                    code(&d.property),
                    code(&d.expected),
                    code(&d.actual)
                );
            }
        }
        if !self.tampered.is_empty() {
            md.push_str(
                "\n#### ⛔ Tampered assets\n\nThese objects held other bytes than this commit builds. \
                 They were overwritten with the commit's bytes and the run fails: someone wrote to the assets bucket.\n\n\
                 | Object | Asset | Expected SHA-256 | Found SHA-256 |\n|---|---|---|---|\n",
            );
            for t in &self.tampered {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    code(&format!("s3://{}/{}", t.bucket, t.key)),
                    code(&t.asset_id),
                    code(&t.expected_sha256),
                    code(&t.found_sha256)
                );
            }
        }
        if !self.unrevertable.is_empty() {
            md.push_str(
                "\n#### ⛔ Unrevertable drift\n\nNot in the template, so CloudFormation cannot revert them; \
                 the run fails until someone removes them.\n\n\
                 | Logical ID | Type | Addition | Detail |\n|---|---|---|---|\n",
            );
            for d in &self.unrevertable {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    code(&d.logical_id),
                    cell(&d.resource_type),
                    cell(&d.kind),
                    cell(&d.detail)
                );
            }
        }
        if !self.failures.is_empty() {
            md.push_str("\n#### Failures\n\n| Logical ID | Type | Reason |\n|---|---|---|\n");
            for (id, ty, why) in &self.failures {
                let _ = writeln!(md, "| {} | {} | {} |", code(id), cell(ty), cell(why));
            }
        }
        if !self.outputs.is_empty() {
            md.push_str("\n#### Outputs\n\n| Key | Value |\n|---|---|\n");
            for (k, v) in &self.outputs {
                let _ = writeln!(md, "| {} | {} |", code(k), code(v));
            }
        }
        if !self.timings.is_empty() {
            let parts: Vec<String> = self
                .timings
                .iter()
                .map(|(p, ms)| format!("{p} {:.1}s", *ms as f64 / 1000.0))
                .collect();
            let _ = writeln!(md, "\n<sub>Timings: {}</sub>", parts.join(" · "));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StackReport {
        StackReport {
            stack_name: "ssm".into(),
            mode: "plan".into(),
            change_set_type: "UPDATE".into(),
            changes: vec![
                Change {
                    action: ChangeAction::Modify,
                    logical_id: "Table".into(),
                    resource_type: "AWS::DynamoDB::Table".into(),
                    replacement: Replacement::True,
                    properties: vec!["Properties.KeySchema".into()],
                },
                Change {
                    action: ChangeAction::Add,
                    logical_id: "Fn".into(),
                    resource_type: "AWS::Lambda::Function".into(),
                    replacement: Replacement::NotApplicable,
                    properties: vec![],
                },
            ],
            drift: vec![DriftedProperty {
                logical_id: "Fn".into(),
                resource_type: "AWS::Lambda::Function".into(),
                property: "Timeout".into(),
                expected: "10".into(),
                actual: "900|x".into(),
            }],
            outputs: vec![("ApiUrl".into(), "https://x".into())],
            status: "UPDATE_COMPLETE".into(),
            timings: vec![("publish".into(), 1500), ("change set".into(), 300)],
            assets_uploaded: 1,
            assets_skipped: 2,
            failures: vec![],
            tampered: vec![],
            unrevertable: vec![],
        }
    }

    #[test]
    fn changes_markdown_snapshot() {
        let expected = "**ssm** would change 2 resource(s):\n\n\
> [!WARNING]\n> 1 resource(s) may be **replaced**: a new physical resource is created and the old one deleted (data in it is lost).\n\n\
| Action | Logical ID | Type | Replacement | Properties |\n|---|---|---|---|---|\n\
| ➕ Add | `Fn` | AWS::Lambda::Function | — | — |\n\
| ✏️ Modify | `Table` | AWS::DynamoDB::Table | ⚠️ **Yes** | Properties.KeySchema |\n";
        assert_eq!(report().changes_markdown(), expected);
    }

    #[test]
    fn summary_has_drift_outputs_timings_and_escapes_cells() {
        let md = report().markdown();
        assert!(md.starts_with("### ssm — `plan`\n"), "{md}");
        assert!(
            md.contains("| `Fn` | AWS::Lambda::Function | `Timeout` | `10` | `900\\|x` |"),
            "{md}"
        );
        assert!(md.contains("| `ApiUrl` | `https://x` |"), "{md}");
        assert!(
            md.contains("Timings: publish 1.5s · change set 0.3s"),
            "{md}"
        );
        assert!(md.contains("assets: not published (plan)"), "{md}");
        let applied = StackReport {
            mode: "apply".into(),
            ..report()
        }
        .markdown();
        assert!(applied.contains("assets: 1 uploaded, 2 already present"));
    }

    #[test]
    fn tampered_assets_get_their_own_section_and_annotation() {
        let mut r = report();
        r.tampered.push(TamperedAsset {
            asset_id: "abc".into(),
            bucket: "assets".into(),
            key: "abc.zip".into(),
            expected_sha256: "00ff".into(),
            found_sha256: "ee11".into(),
        });
        let md = r.markdown();
        assert!(md.contains("#### ⛔ Tampered assets"), "{md}");
        assert!(
            md.contains("| `s3://assets/abc.zip` | `abc` | `00ff` | `ee11` |"),
            "{md}"
        );
        let (title, message) = r.tampered[0].annotation();
        assert_eq!(title, "asset tampered: s3://assets/abc.zip");
        assert!(
            message.contains("ee11 instead of this commit's 00ff"),
            "{message}"
        );
        assert!(!report().markdown().contains("Tampered"));
    }

    #[test]
    fn no_changes_is_one_line() {
        let r = StackReport {
            stack_name: "s".into(),
            ..StackReport::default()
        };
        assert!(!r.has_changes());
        assert_eq!(r.changes_markdown(), "**s**: no changes.\n");
    }

    #[test]
    fn cells_are_single_line_bounded_and_html_safe() {
        assert_eq!(cell("a\nb|<script>"), "a b\\|&lt;script&gt;");
        assert_eq!(cell(&"x".repeat(500)).chars().count(), 118);
    }
}
