//! How a request becomes the Lambda proxy event (payload format 2.0): headers and cookies, the
//! query and path parameters, the request context (with the IAM caller) and the body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use http::header::{CONTENT_TYPE, COOKIE};
use serde_json::{Map, Value, json};

use super::IamCaller;

/// What the event needs besides the request itself.
pub(super) struct EventContext<'a> {
    pub(super) route_key: &'a str,
    /// The API's account: the sandbox deploys and calls from one account, the caller's.
    pub(super) account_id: &'a str,
    pub(super) path_parameters: Vec<(String, String)>,
    pub(super) api_id: &'a str,
    pub(super) stage: &'a str,
    pub(super) domain_name: &'a str,
    pub(super) port: u16,
    pub(super) source_ip: String,
    pub(super) request_id: &'a str,
    pub(super) now: DateTime<Utc>,
    pub(super) authorizer: Option<&'a IamCaller>,
}

/// The payload format 2.0 event for a request.
pub(super) fn build_event(
    parts: &http::request::Parts,
    body: &[u8],
    context: &EventContext<'_>,
) -> Value {
    let path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();
    let (headers, cookies) = event_headers(&parts.headers, &context.source_ip, context.port);
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or_else(|| json!(""));

    let mut http = Map::new();
    http.insert("method".into(), json!(parts.method.as_str()));
    http.insert("path".into(), json!(path));
    http.insert("protocol".into(), json!(protocol(parts.version)));
    http.insert("sourceIp".into(), json!(context.source_ip));
    http.insert("userAgent".into(), user_agent);

    let mut request_context = Map::new();
    request_context.insert("accountId".into(), json!(context.account_id));
    request_context.insert("apiId".into(), json!(context.api_id));
    if let Some(caller) = context.authorizer {
        request_context.insert(
            "authorizer".into(),
            json!({
                "iam": {
                    "accessKey": caller.access_key,
                    "accountId": caller.account_id,
                    "callerId": caller.caller_id,
                    "cognitoIdentity": null,
                    "principalOrgId": null,
                    "userArn": caller.user_arn,
                    "userId": caller.user_id,
                }
            }),
        );
    }
    request_context.insert("domainName".into(), json!(context.domain_name));
    request_context.insert("domainPrefix".into(), json!(context.api_id));
    request_context.insert("http".into(), Value::Object(http));
    request_context.insert("requestId".into(), json!(context.request_id));
    request_context.insert("routeKey".into(), json!(context.route_key));
    request_context.insert("stage".into(), json!(context.stage));
    request_context.insert(
        "time".into(),
        json!(context.now.format("%d/%b/%Y:%H:%M:%S +0000").to_string()),
    );
    request_context.insert("timeEpoch".into(), json!(context.now.timestamp_millis()));

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(context.route_key));
    event.insert("rawPath".into(), json!(path));
    event.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    let query = query_parameters(raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !context.path_parameters.is_empty() {
        let parameters: Map<String, Value> = context
            .path_parameters
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        event.insert("pathParameters".into(), Value::Object(parameters));
    }
    event.insert("requestContext".into(), Value::Object(request_context));
    let is_base64 = if body.is_empty() {
        false
    } else {
        let text = is_text(&parts.headers)
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        match text {
            Some(text) => {
                event.insert("body".into(), json!(text));
                false
            }
            None => {
                event.insert("body".into(), json!(STANDARD.encode(body)));
                true
            }
        }
    };
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// `headers` (repeated names joined with ",") and `cookies` (each pair of every Cookie header),
/// with the `x-forwarded-*` headers API Gateway adds.
fn event_headers(
    headers: &HeaderMap,
    source_ip: &str,
    port: u16,
) -> (Map<String, Value>, Vec<String>) {
    let mut joined: Vec<(String, String)> = Vec::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|cookie| !cookie.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        match joined
            .iter_mut()
            .find(|(existing, _)| existing == name.as_str())
        {
            Some((_, values)) => {
                values.push(',');
                values.push_str(&value);
            }
            None => joined.push((name.as_str().to_owned(), value.into_owned())),
        }
    }
    let mut map: Map<String, Value> = joined
        .into_iter()
        .map(|(name, value)| (name, json!(value)))
        .collect();
    let forwarded_for = match map.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) => format!("{existing}, {source_ip}"),
        None => source_ip.to_owned(),
    };
    map.insert("x-forwarded-for".into(), json!(forwarded_for));
    map.insert("x-forwarded-port".into(), json!(port.to_string()));
    map.insert("x-forwarded-proto".into(), json!("http"));
    (map, cookies)
}

/// `queryStringParameters`: percent-decoded, a repeated key's values joined with ",".
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut parameters = Map::new();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        match parameters.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                parameters.insert(key, Value::String(value));
            }
        }
    }
    parameters
}

/// Decodes `%XX` escapes; anything else, including a bad escape, is kept as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| Some((hex_value(*bytes.get(i + 1)?)? << 4) | hex_value(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(value) => {
                decoded.push(value);
                i += 3;
            }
            None => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Whether the body is passed as text: a text or JSON (or XML, JavaScript) content type.
fn is_text(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.starts_with("text/")
        || matches!(
            media_type.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
        || media_type.ends_with("+json")
        || media_type.ends_with("+xml")
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_escapes_decode_leniently() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        let query = query_parameters("a=1&a=2&b&&c=x%3Dy");
        assert_eq!(
            Value::Object(query),
            json!({"a": "1,2", "b": "", "c": "x=y"})
        );
    }
}
