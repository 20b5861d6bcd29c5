//! Audit lines (target `audit`): one for every token issued and every request refused.
//!
//! Nothing a caller sends reaches a log line unescaped: a repository that passed GitHub's
//! `owner/name` grammar is printed as is (it cannot hold anything but `[A-Za-z0-9._/-]`); every
//! other caller-supplied string is printed `{:?}`-escaped and shortened
//! ([`ssm_core::broker::escaped`]), so a line break or a terminal escape can neither forge a
//! second line nor colour the log.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use actix_web::ResponseError;
use ssm_core::broker::{RepoName, escaped};

use crate::error::ApiError;

/// What is known about a refused request beyond the HTTP request itself.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// The caller's ARN, once STS confirmed it.
    pub caller: Option<&'a str>,
    /// The repository as the caller sent it.
    pub repository: Option<&'a str>,
    pub permissions: Option<&'a BTreeMap<String, String>>,
}

/// A repository as logged: as sent if it is a valid `owner/name`, otherwise escaped.
pub fn repository(raw: &str) -> String {
    match RepoName::parse(raw) {
        Ok(_) => raw.to_owned(),
        Err(_) => escaped(raw, 150),
    }
}

/// Requested permissions as logged: `{:?}` (names and levels escaped), at most 500 characters.
pub fn permissions(p: &BTreeMap<String, String>) -> String {
    format!("{p:?}").chars().take(500).collect()
}

/// The `User-Agent` header, escaped (callers may put anything there).
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .map_or_else(
            || "-".to_owned(),
            |v| escaped(&String::from_utf8_lossy(v.as_bytes()), 200),
        )
}

/// A caller ARN as logged (STS returned it, but its session name is the caller's choice).
pub fn caller(arn: Option<&str>) -> String {
    arn.map_or_else(|| "-".to_owned(), |a| escaped(a, 300))
}

/// Writes the audit line of a refused request.
pub fn refused(req: &HttpRequest, err: &ApiError, ctx: &Context<'_>) {
    let repository = ctx.repository.map_or_else(|| "-".to_owned(), repository);
    let permissions = ctx.permissions.map_or_else(|| "-".to_owned(), permissions);
    tracing::warn!(
        target: "audit",
        decision = "refused",
        status = err.status_code().as_u16(),
        code = err.code(),
        method = %escaped(req.method().as_str(), 20),
        path = %escaped(req.path(), 200),
        caller = %caller(ctx.caller),
        repository = %repository,
        permissions = %permissions,
        user_agent = %user_agent(req),
        reason = %escaped(&err.to_string(), 500),
        "request refused"
    );
}
