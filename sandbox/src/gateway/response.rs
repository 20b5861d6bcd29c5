//! How a response is shaped: API Gateway's own error bodies, and the function's response payload
//! (payload format 2.0) read into the HTTP response.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// The HTTP response, before the request id is added.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Reply {
    /// API Gateway's own response for `status`, `{"message":"Not Found"}` and the like.
    pub(super) fn error(status: StatusCode) -> Self {
        let message = match status {
            StatusCode::NOT_FOUND => "Not Found",
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
            StatusCode::BAD_REQUEST => "Bad Request",
            StatusCode::FORBIDDEN => "Forbidden",
            _ => "Internal Server Error",
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }

    /// A 403 of the IAM authorizer: `{"message": ...}` and `x-amzn-ErrorType`.
    pub(super) fn forbidden(message: String, error_type: &'static str) -> Self {
        let mut reply = Self::error(StatusCode::FORBIDDEN);
        reply.body = Bytes::from(json!({ "message": message }).to_string());
        reply.headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(error_type),
        );
        reply
    }

    pub(super) fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if let Ok(value) = HeaderValue::from_str(request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("apigw-requestid"), value);
        }
        response
    }
}

/// Why a function's response payload is not a valid payload format 2.0 response.
#[derive(Debug, thiserror::Error)]
pub(super) enum MalformedResponse {
    #[error("statusCode is not an HTTP status")]
    StatusCode,
    #[error("{0} is not of the expected type")]
    FieldType(&'static str),
    #[error("the header {0:?} is not a valid header")]
    Header(String),
    #[error("body is not valid base64 although isBase64Encoded is true")]
    Base64,
}

/// Headers API Gateway computes itself rather than taking from the function.
const COMPUTED_HEADERS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// The HTTP response for a function's response payload (payload format 2.0).
pub(super) fn integration_reply(payload: Value) -> Result<Reply, MalformedResponse> {
    let response = match payload {
        Value::Object(response) if response.contains_key("statusCode") => response,
        Value::String(text) => return Ok(inferred(Bytes::from(text))),
        other => return Ok(inferred(Bytes::from(other.to_string()))),
    };
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(MalformedResponse::StatusCode)?;

    let mut headers = HeaderMap::new();
    match response.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(single)) => {
            for (name, value) in single {
                append_header(&mut headers, name, header_text(value, "headers")?)?;
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("headers")),
    }
    match response.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(multi)) => {
            for (name, values) in multi {
                let values = values
                    .as_array()
                    .ok_or(MalformedResponse::FieldType("multiValueHeaders"))?;
                for value in values {
                    append_header(&mut headers, name, header_text(value, "multiValueHeaders")?)?;
                }
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("multiValueHeaders")),
    }
    match response.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let cookie = cookie
                    .as_str()
                    .ok_or(MalformedResponse::FieldType("cookies"))?;
                append_header(&mut headers, SET_COOKIE.as_str(), cookie.to_owned())?;
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("cookies")),
    }

    let is_base64 = match response.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(MalformedResponse::FieldType("isBase64Encoded")),
    };
    let body = match response.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(body)) if is_base64 => Bytes::from(
            STANDARD
                .decode(body)
                .map_err(|_| MalformedResponse::Base64)?,
        ),
        Some(Value::String(body)) => Bytes::from(body.clone()),
        Some(_) => return Err(MalformedResponse::FieldType("body")),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A payload without `statusCode`: 200, JSON, the payload as the body.
fn inferred(body: Bytes) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Reply {
        status: StatusCode::OK,
        headers,
        body,
    }
}

/// A header value as text: strings as they are, numbers and booleans written out.
fn header_text(value: &Value, field: &'static str) -> Result<String, MalformedResponse> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(MalformedResponse::FieldType(field)),
    }
}

fn append_header(
    headers: &mut HeaderMap,
    name: &str,
    value: String,
) -> Result<(), MalformedResponse> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| MalformedResponse::Header(name.to_owned()))?;
    if COMPUTED_HEADERS.contains(&header.as_str()) {
        return Ok(());
    }
    let value =
        HeaderValue::try_from(value).map_err(|_| MalformedResponse::Header(name.to_owned()))?;
    headers.append(header, value);
    Ok(())
}
