//! GitHub Actions' file and workflow-command formats, and the OIDC token claims shown when STS
//! refuses the token.

use base64::Engine as _;
use serde::Deserialize;

/// One `$GITHUB_OUTPUT` entry. Always the heredoc form, with a delimiter that cannot occur in the
/// value, so multi-line values (the Markdown report) and values with `=` are safe.
/// `nonce` is random per entry (the caller passes it; this crate has no randomness of its own).
pub fn output_entry(name: &str, value: &str, nonce: &str) -> String {
    let mut delimiter = format!("ghadelimiter_{nonce}");
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// Reads a `$GITHUB_OUTPUT` file back: `name<<DELIMITER` … `DELIMITER` entries (what
/// [`output_entry`] writes) and `name=value` lines, the two forms GitHub accepts. A later entry
/// with the same name wins, as on GitHub. A heredoc without its closing delimiter, or a line in
/// neither form, is an error naming its line.
pub fn parse_output_file(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l == delimiter {
                    closed = true;
                    break;
                }
                value.push(l);
            }
            if !closed {
                return Err(format!(
                    "line {}: output {name:?} has no closing delimiter",
                    n + 1
                ));
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        } else if !line.is_empty() {
            return Err(format!(
                "line {}: neither name=value nor name<<DELIMITER",
                n + 1
            ));
        }
    }
    Ok(out)
}

/// An output name GitHub accepts (`[A-Za-z0-9_-]`), for stack outputs named freely.
pub fn output_name(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Escapes a workflow command's message (`::error::<message>`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (`::error title=<value>::`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::error title=...::message`
pub fn error_command(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// `::warning title=...::message`
pub fn warning_command(title: &str, message: &str) -> String {
    format!(
        "::warning title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// `::add-mask::value` — GitHub replaces the value with `***` in every later log line.
pub fn mask_command(secret: &str) -> String {
    format!("::add-mask::{}", escape_data(secret))
}

/// The claims of a GitHub OIDC token a role's trust policy conditions on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    #[serde(default)]
    pub sub: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default, rename = "ref")]
    pub git_ref: String,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(s) => s,
        Aud::Many(v) => v.join(","),
    })
}

impl TokenClaims {
    /// Reads the (unverified: STS verifies) payload of a JWT. Only these four claims are kept;
    /// the signature and the rest of the token are never returned or printed.
    pub fn from_jwt(jwt: &str) -> Option<Self> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What to tell the user when `AssumeRoleWithWebIdentity` is refused: the token's claims beside
/// the trust-policy conditions that would accept them.
pub fn access_denied_help(
    role_arn: &str,
    claims: Option<&TokenClaims>,
    sts_message: &str,
) -> String {
    let mut msg = format!("STS refused to let this workflow assume {role_arn}: {sts_message}\n");
    match claims {
        Some(c) => {
            msg.push_str(&format!(
                "The GitHub OIDC token presented:\n  sub: {}\n  aud: {}\n  repository: {}\n  ref: {}\n",
                c.sub, c.aud, c.repository, c.git_ref
            ));
            msg.push_str(&format!(
                "The role's trust policy must allow sts:AssumeRoleWithWebIdentity for the principal \
                 arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com with\n  \
                 \"token.actions.githubusercontent.com:aud\": \"{}\" (StringEquals)\n  \
                 \"token.actions.githubusercontent.com:sub\": \"{}\" (StringEquals or StringLike)\n\
                 and the account must have that OIDC provider with client id {}.",
                c.aud, c.sub, c.aud
            ));
        }
        None => msg.push_str(
            "The token's claims could not be read. The role's trust policy must allow \
             sts:AssumeRoleWithWebIdentity for token.actions.githubusercontent.com with this repository's `sub`.",
        ),
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_survive_newlines_and_delimiter_collisions() {
        let e = output_entry("changes-markdown", "a\nb=c", "N");
        assert_eq!(
            e,
            "changes-markdown<<ghadelimiter_N\na\nb=c\nghadelimiter_N\n"
        );
        let tricky = output_entry("x", "ghadelimiter_N\n", "N");
        assert!(tricky.starts_with("x<<ghadelimiter_N_\n"), "{tricky}");
        assert_eq!(output_name("Api.Url/1"), "Api_Url_1");
    }

    #[test]
    fn output_files_read_back_in_both_forms() {
        let written = [
            output_entry("changes-markdown", "a\nb=c", "N"),
            output_entry("x", "ghadelimiter_N\n", "N"),
        ]
        .concat();
        let read = parse_output_file(&written).expect("what output_entry writes reads back");
        assert_eq!(read["changes-markdown"], "a\nb=c");
        assert_eq!(read["x"], "ghadelimiter_N\n");

        let text = "a=1\nlist<<ghadelimiter_x\n[\"S/Fn\"]\nmore\nghadelimiter_x\nb=two=2\n";
        let out = parse_output_file(text).expect("both forms");
        assert_eq!(out["a"], "1");
        assert_eq!(out["list"], "[\"S/Fn\"]\nmore");
        assert_eq!(out["b"], "two=2");

        assert!(
            parse_output_file("x<<EOF\nvalue\n")
                .unwrap_err()
                .contains("no closing delimiter")
        );
        assert!(
            parse_output_file("garbage\n")
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[test]
    fn workflow_commands_escape() {
        assert_eq!(
            error_command("Fn: a,b", "50%\nline"),
            "::error title=Fn%3A a%2Cb::50%25%0Aline"
        );
        assert_eq!(mask_command("abc"), "::add-mask::abc");
    }

    #[test]
    fn claims_from_a_jwt_and_the_help_text() {
        let payload = serde_json::json!({
            "sub": "repo:octo/ssm:ref:refs/heads/main", "aud": ["sts.amazonaws.com"],
            "repository": "octo/ssm", "ref": "refs/heads/main", "iss": "https://token.actions.githubusercontent.com"
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{b64}.c2lnbmF0dXJl");
        let c = TokenClaims::from_jwt(&jwt).unwrap();
        assert_eq!(c.aud, "sts.amazonaws.com");
        assert_eq!(c.git_ref, "refs/heads/main");
        let help = access_denied_help("arn:aws:iam::1:role/deploy", Some(&c), "Not authorized");
        assert!(help.contains("sub: repo:octo/ssm:ref:refs/heads/main"));
        assert!(help.contains(
            "\"token.actions.githubusercontent.com:sub\": \"repo:octo/ssm:ref:refs/heads/main\""
        ));
        assert!(!help.contains("c2lnbmF0dXJl") && !help.contains(&b64));
        assert_eq!(TokenClaims::from_jwt("not-a-jwt"), None);
    }
}
