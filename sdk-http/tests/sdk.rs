//! The SDK driven through our client against loopback servers written here: what is sent, what
//! comes back, and how each kind of failure reaches the SDK's retry policy.

use std::time::{Duration, Instant};

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::{Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::get_caller_identity::{
    GetCallerIdentityError, GetCallerIdentityOutput,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const IDENTITY: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:role/integrity</Arn>
    <UserId>AROAEXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

/// `sts:GetCallerIdentity` against `endpoint` through our client, no retries.
async fn caller_identity(
    endpoint: &str,
    timeouts: TimeoutConfig,
) -> Result<GetCallerIdentityOutput, SdkError<GetCallerIdentityError, HttpResponse>> {
    let config = ssm_sdk_http::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::for_tests())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
}

/// Reads one request (headers and a `content-length` body) off `stream`.
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the client closed before a whole request");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// A loopback server for one request: it reads the request, writes `reply` as is, then holds the
/// connection open for `hold`. Returns its URL and the request it read.
async fn one_request(reply: String, hold: Duration) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let request = read_request(&mut stream).await;
        stream.write_all(reply.as_bytes()).await.expect("write");
        tokio::time::sleep(hold).await;
        request
    });
    (endpoint, server)
}

#[tokio::test]
async fn a_signed_request_goes_out_over_http1_and_the_response_comes_back() {
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{IDENTITY}",
        IDENTITY.len()
    );
    let (endpoint, server) = one_request(reply, Duration::ZERO).await;
    let out = caller_identity(&endpoint, TimeoutConfig::builder().build())
        .await
        .expect("GetCallerIdentity through our client");
    assert_eq!(out.arn(), Some("arn:aws:iam::123456789012:role/integrity"));
    let request = server.await.expect("server");
    let (head, body) = request.split_once("\r\n\r\n").expect("a whole request");
    assert!(head.starts_with("POST / HTTP/1.1\r\n"), "{head}");
    let headers: Vec<String> = head
        .lines()
        .skip(1)
        .map(|l| l.split(':').next().unwrap_or_default().to_ascii_lowercase())
        .collect();
    let signed = head
        .lines()
        .find_map(|l| l.strip_prefix("authorization: "))
        .and_then(|a| a.split("SignedHeaders=").nth(1))
        .and_then(|s| s.split(',').next())
        .expect("a SigV4 authorization header");
    // Every header sent was either signed or one SigV4 leaves out (and reqwest added nothing).
    for name in &headers {
        assert!(
            signed.split(';').any(|s| s == name)
                || [
                    "authorization",
                    "user-agent",
                    "content-length",
                    "amz-sdk-invocation-id",
                    "amz-sdk-request",
                    "accept"
                ]
                .contains(&name.as_str()),
            "{name} was sent unsigned: {head}"
        );
    }
    assert_eq!(body, "Action=GetCallerIdentity&Version=2011-06-15");
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_io_error() {
    // Bind then drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let err = caller_identity(
        &format!("http://127.0.0.1:{port}"),
        TimeoutConfig::builder().build(),
    )
    .await
    .expect_err("nothing listens");
    match err {
        SdkError::DispatchFailure(e) => assert!(e.is_io(), "{e:?}"),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_read_timeout_not_a_hang() {
    // No answer: the connection is held open.
    let (endpoint, server) = one_request(String::new(), Duration::from_secs(30)).await;
    let started = Instant::now();
    let err = caller_identity(
        &endpoint,
        TimeoutConfig::builder()
            .read_timeout(Duration::from_millis(300))
            .build(),
    )
    .await
    .expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    match err {
        SdkError::DispatchFailure(e) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    server.abort();
}

#[tokio::test]
async fn a_truncated_response_is_an_error_not_a_success() {
    // Headers promise a body the server never sends: the connection closes mid-message.
    let (endpoint, _server) = one_request(
        "HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n<Get".into(),
        Duration::ZERO,
    )
    .await;
    let err = caller_identity(&endpoint, TimeoutConfig::builder().build())
        .await
        .expect_err("a truncated body");
    // The SDK reads the body after the connector returned it: a response error, not a success.
    assert!(
        matches!(
            err,
            SdkError::ResponseError(_) | SdkError::DispatchFailure(_)
        ),
        "{err:?}"
    );
}
