//! The API Gateway emulation over real sockets: the events it sends, the responses it builds,
//! and its IAM authorizer (SigV4 and identity policies; against moto's IAM at the end).
#![expect(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use ssm_sandbox::callers::{CallerCredentials, FixedPrincipals, IamCallers, key_policy};
use ssm_sandbox::gateway::{
    GatewayConfig, GatewayHandle, IamCaller, MAX_BODY, Principal, Route, SecretAccessKey, serve,
};
use ssm_sandbox::{InvokeError, InvokeFuture, Invoker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Answer = dyn Fn(&Value) -> Result<Value, InvokeError> + Send + Sync;

/// A function double: records every event and answers with `answer`.
struct Recorder {
    events: Mutex<Vec<Value>>,
    answer: Box<Answer>,
    delay: Duration,
}

impl Recorder {
    fn answering(
        answer: impl Fn(&Value) -> Result<Value, InvokeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new(Vec::new()),
            answer: Box::new(answer),
            delay: Duration::ZERO,
        })
    }

    fn replying(payload: Value) -> Arc<Self> {
        Self::answering(move |_| Ok(payload.clone()))
    }

    fn ok() -> Arc<Self> {
        Self::replying(json!({ "statusCode": 200, "body": "ok" }))
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn only_event(&self) -> Value {
        let events = self.events();
        assert_eq!(events.len(), 1, "{events:#?}");
        events.into_iter().next().unwrap()
    }
}

impl Invoker for Recorder {
    fn invoke(&self, event: Value) -> InvokeFuture {
        let answer = (self.answer)(&event);
        self.events.lock().unwrap().push(event);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        })
    }
}

fn caller() -> IamCaller {
    IamCaller {
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        account_id: "123456789012".into(),
        caller_id: "AIDAJQABLZS4A3QDU576Q".into(),
        user_arn: "arn:aws:iam::123456789012:user/alice".into(),
        user_id: "AIDAJQABLZS4A3QDU576Q".into(),
    }
}

const REGION: &str = "us-east-1";
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}}"#;

fn alice() -> CallerCredentials {
    CallerCredentials {
        access_key_id: caller().access_key,
        secret: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: None,
    }
}

/// alice, allowed everything.
fn principals() -> Arc<FixedPrincipals> {
    let principals = FixedPrincipals::default();
    principals.insert(Principal {
        caller: caller(),
        secret: alice().secret,
        session_token: None,
        policies: vec![ALLOW_ALL.to_owned()],
    });
    Arc::new(principals)
}

/// Sends a request signed by `credentials` at `at`.
async fn send_as(
    request: reqwest::RequestBuilder,
    credentials: &CallerCredentials,
    at: SystemTime,
) -> reqwest::Response {
    let (client, request) = request.build_split();
    let mut request = request.unwrap();
    credentials.sign(&mut request, REGION, at).unwrap();
    client.execute(request).await.unwrap()
}

/// `send()`, signed by alice now.
trait SendSigned {
    async fn send_signed(self) -> reqwest::Result<reqwest::Response>;
}

impl SendSigned for reqwest::RequestBuilder {
    async fn send_signed(self) -> reqwest::Result<reqwest::Response> {
        Ok(send_as(self, &alice(), SystemTime::now()).await)
    }
}

fn route(key: &str, target: &Arc<Recorder>, iam: bool) -> Route {
    Route {
        route_key: key.into(),
        target: Arc::clone(target) as Arc<dyn Invoker>,
        iam,
    }
}

async fn spawn_with(routes: Vec<Route>, max_body: usize) -> GatewayHandle {
    spawn_for(routes, max_body, principals()).await
}

async fn spawn_for(
    routes: Vec<Route>,
    max_body: usize,
    principals: Arc<dyn ssm_sandbox::gateway::Principals>,
) -> GatewayHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = GatewayConfig {
        api_id: "a1b2c3d4e5".into(),
        stage: "$default".into(),
        routes,
        account_id: "123456789012".into(),
        region: REGION.into(),
        principals,
        max_body,
    };
    serve(listener, config).await
}

async fn spawn(routes: Vec<Route>) -> GatewayHandle {
    spawn_with(routes, MAX_BODY).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn message(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("apigw-requestid"));
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

/// Sends raw bytes and reads until the server closes the connection (send `connection: close`).
/// Write and read errors end the exchange: the server may reset a connection it refused.
async fn raw_exchange(gateway: &GatewayHandle, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            response.extend_from_slice(chunk.get(..n).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_json_post_becomes_a_payload_v2_event() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("POST /v1/encrypt", &crypto, true)]).await;
    let response = client()
        .post(format!("{}/v1/encrypt", gateway.url()))
        .header("content-type", "application/json")
        .header("user-agent", "ssm-test/1")
        .body(r#"{"plaintext":"aGk="}"#)
        .send_signed()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["apigw-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "ok");

    let event = crypto.only_event();
    let port = gateway.local_addr().port();
    let context = &event["requestContext"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "POST /v1/encrypt");
    assert_eq!(event["rawPath"], "/v1/encrypt");
    assert_eq!(event["rawQueryString"], "");
    assert_eq!(event["body"], r#"{"plaintext":"aGk="}"#);
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["headers"]["content-type"], "application/json");
    assert_eq!(event["headers"]["content-length"], "20");
    assert_eq!(event["headers"]["host"], format!("127.0.0.1:{port}"));
    assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(event["headers"]["x-forwarded-port"], port.to_string());
    for absent in [
        "cookies",
        "queryStringParameters",
        "pathParameters",
        "stageVariables",
    ] {
        assert!(event.get(absent).is_none(), "{absent} in {event:#}");
    }
    assert_eq!(context["accountId"], "123456789012");
    assert_eq!(context["apiId"], "a1b2c3d4e5");
    assert_eq!(context["domainName"], format!("127.0.0.1:{port}"));
    assert_eq!(context["domainPrefix"], "a1b2c3d4e5");
    assert_eq!(
        context["http"],
        json!({
            "method": "POST",
            "path": "/v1/encrypt",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "ssm-test/1",
        })
    );
    assert_eq!(context["requestId"], request_id.as_str());
    assert_eq!(context["routeKey"], "POST /v1/encrypt");
    assert_eq!(context["stage"], "$default");
    assert_eq!(
        context["authorizer"],
        json!({
            "iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAJQABLZS4A3QDU576Q",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": "arn:aws:iam::123456789012:user/alice",
                "userId": "AIDAJQABLZS4A3QDU576Q",
            }
        })
    );
    let epoch_ms = context["timeEpoch"].as_i64().unwrap();
    let time = chrono::DateTime::from_timestamp_millis(epoch_ms).unwrap();
    assert_eq!(
        context["time"],
        time.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
    );
    assert!((chrono::Utc::now() - time).num_seconds().abs() < 60);
    assert_eq!(gateway.requests(), 1);
}

#[tokio::test]
async fn binary_and_non_utf8_bodies_are_base64_encoded() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("POST /wrap", &crypto, true)]).await;
    let binary = vec![0u8, 0xff, 0xfe, b'a', 0x80];
    for content_type in [
        "application/octet-stream",
        "application/json",
        "text/plain; charset=utf-8",
    ] {
        client()
            .post(format!("{}/wrap", gateway.url()))
            .header("content-type", content_type)
            .body(binary.clone())
            .send_signed()
            .await
            .unwrap();
    }
    client()
        .post(format!("{}/wrap", gateway.url()))
        .body("text, but no content type")
        .send_signed()
        .await
        .unwrap();
    client()
        .post(format!("{}/wrap", gateway.url()))
        .header("content-type", "application/vnd.api+json")
        .body("{}")
        .send_signed()
        .await
        .unwrap();

    let events = crypto.events();
    assert_eq!(events.len(), 5);
    for event in events.get(..3).unwrap() {
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(
            STANDARD.decode(event["body"].as_str().unwrap()).unwrap(),
            binary
        );
    }
    assert_eq!(events[3]["isBase64Encoded"], true);
    assert_eq!(
        events[3]["body"],
        STANDARD.encode("text, but no content type")
    );
    assert_eq!(events[4]["isBase64Encoded"], false);
    assert_eq!(events[4]["body"], "{}");
}

#[tokio::test]
async fn a_request_without_a_body_has_no_body_field() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("GET /version", &crypto, true)]).await;
    client()
        .get(format!("{}/version", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    let event = crypto.only_event();
    assert!(event.get("body").is_none(), "{event:#}");
    assert_eq!(event["isBase64Encoded"], false);
}

#[tokio::test]
async fn repeated_headers_and_query_keys_are_joined_with_commas() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("GET /v1/keys", &crypto, true)]).await;
    let mut headers = HeaderMap::new();
    headers.append("X-Tag", HeaderValue::from_static("one"));
    headers.append("x-tag", HeaderValue::from_static("two"));
    headers.append("X-Single", HeaderValue::from_static("Mixed Case Value"));
    let query = "key=a&key=b&name=hello%20world&flag&empty=";
    client()
        .get(format!("{}/v1/keys?{query}", gateway.url()))
        .headers(headers)
        .send_signed()
        .await
        .unwrap();

    let event = crypto.only_event();
    assert_eq!(event["headers"]["x-tag"], "one,two");
    assert_eq!(event["headers"]["x-single"], "Mixed Case Value");
    assert!(event["headers"].get("X-Single").is_none());
    assert_eq!(event["rawQueryString"], query);
    assert_eq!(
        event["queryStringParameters"],
        json!({ "key": "a,b", "name": "hello world", "flag": "", "empty": "" })
    );
}

#[tokio::test]
async fn cookies_move_from_the_headers_to_the_cookies_field() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("GET /version", &crypto, true)]).await;
    let mut headers = HeaderMap::new();
    headers.append(
        "cookie",
        HeaderValue::from_static("session=abc; theme=dark"),
    );
    headers.append("cookie", HeaderValue::from_static("lang=en"));
    client()
        .get(format!("{}/version", gateway.url()))
        .headers(headers)
        .send_signed()
        .await
        .unwrap();

    let event = crypto.only_event();
    assert_eq!(
        event["cookies"],
        json!(["session=abc", "theme=dark", "lang=en"])
    );
    assert!(event["headers"].get("cookie").is_none(), "{event:#}");
}

#[tokio::test]
async fn the_most_specific_route_wins_and_default_takes_the_rest() {
    let exact = Recorder::ok();
    let any = Recorder::ok();
    let param = Recorder::ok();
    let greedy = Recorder::ok();
    let default = Recorder::ok();
    let gateway = spawn(vec![
        route("$default", &default, false),
        route("GET /files/{proxy+}", &greedy, false),
        route("GET /keys/{keyId}/versions/{version}", &param, false),
        route("ANY /keys/primary/versions/latest", &any, false),
        route("GET /keys/primary/versions/latest", &exact, false),
    ])
    .await;
    let get = |path: &str| client().get(format!("{}{path}", gateway.url())).send();
    get("/keys/primary/versions/latest").await.unwrap();
    client()
        .delete(format!("{}/keys/primary/versions/latest", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    get("/keys/k%2D1/versions/7").await.unwrap();
    get("/files/a/b/c.txt").await.unwrap();
    get("/files").await.unwrap();
    get("/elsewhere?x=1").await.unwrap();

    assert_eq!(
        exact.only_event()["routeKey"],
        "GET /keys/primary/versions/latest"
    );
    let any_event = any.only_event();
    assert_eq!(any_event["routeKey"], "ANY /keys/primary/versions/latest");
    assert_eq!(any_event["requestContext"]["http"]["method"], "DELETE");
    let param_event = param.only_event();
    assert_eq!(param_event["rawPath"], "/keys/k%2D1/versions/7");
    assert_eq!(
        param_event["pathParameters"],
        json!({ "keyId": "k-1", "version": "7" })
    );
    assert_eq!(
        greedy.only_event()["pathParameters"],
        json!({ "proxy": "a/b/c.txt" })
    );
    let defaults = default.events();
    assert_eq!(defaults.len(), 2, "{defaults:#?}");
    for event in &defaults {
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["requestContext"]["routeKey"], "$default");
        assert!(event.get("pathParameters").is_none());
    }
    assert_eq!(defaults[0]["rawPath"], "/files");
    assert_eq!(defaults[1]["rawPath"], "/elsewhere");
}

#[tokio::test]
async fn a_named_stage_is_the_first_path_segment() {
    let crypto = Recorder::ok();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = GatewayConfig {
        api_id: "a1b2c3d4e5".into(),
        stage: "prod".into(),
        routes: vec![route("GET /version", &crypto, true)],
        account_id: "123456789012".into(),
        region: REGION.into(),
        principals: principals(),
        max_body: MAX_BODY,
    };
    let gateway = serve(listener, config).await;
    let response = client()
        .get(format!("{}/prod/version", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let unstaged = client()
        .get(format!("{}/version", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    assert_eq!(unstaged.status(), 404);
    let event = crypto.only_event();
    assert_eq!(event["rawPath"], "/prod/version");
    assert_eq!(event["requestContext"]["stage"], "prod");
}

#[tokio::test]
async fn no_matching_route_is_404() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("POST /v1/encrypt", &crypto, true)]).await;
    for response in [
        client()
            .get(format!("{}/v1/encrypt", gateway.url()))
            .send_signed()
            .await
            .unwrap(),
        client()
            .post(format!("{}/v1/encrypt/", gateway.url()))
            .send_signed()
            .await
            .unwrap(),
        client()
            .post(format!("{}/nope", gateway.url()))
            .send_signed()
            .await
            .unwrap(),
    ] {
        assert_eq!(
            message(response).await,
            (404, json!({ "message": "Not Found" }))
        );
    }
    assert!(crypto.events().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_chunked() {
    let crypto = Recorder::ok();
    let gateway = spawn_with(vec![route("POST /wrap", &crypto, true)], 16).await;
    let at_limit = client()
        .post(format!("{}/wrap", gateway.url()))
        .body(vec![b'x'; 16])
        .send_signed()
        .await
        .unwrap();
    assert_eq!(at_limit.status(), 200);
    let declared = client()
        .post(format!("{}/wrap", gateway.url()))
        .body(vec![b'x'; 17])
        .send_signed()
        .await
        .unwrap();
    let too_large = (413, json!({ "message": "Request Entity Too Large" }));
    assert_eq!(message(declared).await, too_large);

    let chunked = raw_exchange(
        &gateway,
        b"POST /wrap HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("Request Entity Too Large"), "{chunked}");
    assert_eq!(crypto.events().len(), 1);
}

#[tokio::test]
async fn a_status_code_response_maps_status_headers_cookies_and_body() {
    let crypto = Recorder::replying(json!({
        "statusCode": 201,
        "headers": { "content-type": "text/plain", "x-count": 3, "content-length": "999" },
        "multiValueHeaders": { "x-multi": ["a", "b"] },
        "cookies": ["session=abc; HttpOnly", "theme=dark"],
        "body": "created",
        "isBase64Encoded": false,
    }));
    let gateway = spawn(vec![route("POST /v1/encrypt", &crypto, true)]).await;
    let response = client()
        .post(format!("{}/v1/encrypt", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-count"], "3");
    assert_eq!(headers["content-length"], "7");
    let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["session=abc; HttpOnly", "theme=dark"]);
    assert!(headers.contains_key("apigw-requestid"));
    assert_eq!(response.text().await.unwrap(), "created");
}

#[tokio::test]
async fn a_payload_without_status_code_is_inferred_as_json() {
    let object = Recorder::replying(json!({ "version": "1.2.3", "nested": { "a": [1, 2] } }));
    let string = Recorder::replying(json!("plain words"));
    let number = Recorder::replying(json!(42));
    let gateway = spawn(vec![
        route("GET /object", &object, true),
        route("GET /string", &string, true),
        route("GET /number", &number, true),
    ])
    .await;
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", gateway.url()))
            .send_signed()
    };

    let response = get("/object").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "version": "1.2.3", "nested": { "a": [1, 2] } })
    );
    let response = get("/string").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "plain words");
    assert_eq!(get("/number").await.unwrap().text().await.unwrap(), "42");
}

#[tokio::test]
async fn a_base64_response_body_is_decoded() {
    let bytes = vec![0u8, 1, 2, 0xff, 0xfe];
    let crypto = Recorder::replying(json!({
        "statusCode": 200,
        "headers": { "content-type": "application/octet-stream" },
        "body": STANDARD.encode(&bytes),
        "isBase64Encoded": true,
    }));
    let gateway = spawn(vec![route("POST /unwrap", &crypto, true)]).await;
    let response = client()
        .post(format!("{}/unwrap", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn a_malformed_response_is_500() {
    let payloads = [
        json!({ "statusCode": "200", "body": "x" }),
        json!({ "statusCode": 99 }),
        json!({ "statusCode": 200.5 }),
        json!({ "statusCode": 200, "body": "%%%", "isBase64Encoded": true }),
        json!({ "statusCode": 200, "body": { "not": "a string" } }),
        json!({ "statusCode": 200, "headers": ["x"] }),
        json!({ "statusCode": 200, "headers": { "bad header": "x" } }),
        json!({ "statusCode": 200, "headers": { "x": "line\nbreak" } }),
        json!({ "statusCode": 200, "cookies": [1] }),
    ];
    let routes: Vec<_> = payloads
        .iter()
        .map(|payload| Recorder::replying(payload.clone()))
        .collect();
    let gateway = spawn(
        routes
            .iter()
            .enumerate()
            .map(|(i, target)| route(&format!("GET /{i}"), target, true))
            .collect(),
    )
    .await;
    for (i, payload) in payloads.iter().enumerate() {
        let response = client()
            .get(format!("{}/{i}", gateway.url()))
            .send_signed()
            .await
            .unwrap();
        assert_eq!(
            message(response).await,
            (500, json!({ "message": "Internal Server Error" })),
            "{payload}"
        );
    }
}

#[tokio::test]
async fn integration_failures_answer_as_api_gateway_does() {
    let failed = Recorder::answering(|_| {
        Err(InvokeError::Function {
            error_type: "Runtime.ExitError".into(),
            message: "exit status 1".into(),
        })
    });
    let function_timeout =
        Recorder::answering(|_| Err(InvokeError::Timeout(Duration::from_secs(3))));
    let integration_timeout =
        Recorder::answering(|_| Err(InvokeError::Timeout(Duration::from_secs(30))));
    let unavailable = Recorder::answering(|_| Err(InvokeError::Unavailable("stopped".into())));
    let gateway = spawn(vec![
        route("GET /failed", &failed, true),
        route("GET /function-timeout", &function_timeout, true),
        route("GET /integration-timeout", &integration_timeout, true),
        route("GET /unavailable", &unavailable, true),
    ])
    .await;
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", gateway.url()))
            .send_signed()
    };
    let internal = (500, json!({ "message": "Internal Server Error" }));
    assert_eq!(message(get("/failed").await.unwrap()).await, internal);
    assert_eq!(
        message(get("/function-timeout").await.unwrap()).await,
        internal
    );
    assert_eq!(message(get("/unavailable").await.unwrap()).await, internal);
    assert_eq!(
        message(get("/integration-timeout").await.unwrap()).await,
        (503, json!({ "message": "Service Unavailable" }))
    );
}

#[tokio::test]
async fn a_route_without_iam_has_no_authorizer() {
    let open = Recorder::ok();
    let gateway = spawn(vec![route("GET /version", &open, false)]).await;
    client()
        .get(format!("{}/version", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    let event = open.only_event();
    assert!(
        event["requestContext"].get("authorizer").is_none(),
        "{event:#}"
    );
    assert_eq!(event["requestContext"]["accountId"], "123456789012");
}

#[tokio::test]
async fn every_response_has_its_own_request_id() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("GET /version", &crypto, true)]).await;
    let mut ids = Vec::new();
    for path in ["/version", "/version", "/missing"] {
        let response = client()
            .get(format!("{}{path}", gateway.url()))
            .send_signed()
            .await
            .unwrap();
        ids.push(
            response.headers()["apigw-requestid"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let events = crypto.events();
    assert!(
        ids.iter()
            .any(|id| events[0]["requestContext"]["requestId"] == id.as_str())
    );
    assert_eq!(gateway.requests(), 3);
}

#[tokio::test]
async fn odd_requests_get_answers_not_panics() {
    let default = Recorder::ok();
    let gateway = spawn(vec![route("$default", &default, false)]).await;

    let http10 = raw_exchange(&gateway, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(
        http10.starts_with("HTTP/1.0 200") || http10.starts_with("HTTP/1.1 200"),
        "{http10}"
    );

    let bad_utf8 = raw_exchange(
        &gateway,
        b"GET /\xff\xfe%ff HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(bad_utf8.starts_with("HTTP/1.1 "), "{bad_utf8}");

    let mut huge = b"GET /huge HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    huge.extend(b"\r\nconnection: close\r\n\r\n");
    let huge = raw_exchange(&gateway, &huge).await;
    assert!(
        huge.is_empty() || huge.starts_with("HTTP/1.1 431"),
        "{huge}"
    );

    let chunked = raw_exchange(
        &gateway,
        b"POST /chunks HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\
          connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");

    let garbage = raw_exchange(&gateway, b"\x00\x01 nonsense\r\n\r\n").await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );

    let events = default.events();
    let protocols: Vec<_> = events
        .iter()
        .map(|e| e["requestContext"]["http"]["protocol"].clone())
        .collect();
    assert!(protocols.contains(&json!("HTTP/1.0")), "{protocols:?}");
    let chunks = events.iter().find(|e| e["rawPath"] == "/chunks").unwrap();
    assert_eq!(chunks["body"], "hello world");

    // Still serving.
    let response = client()
        .get(format!("{}/after", gateway.url()))
        .send_signed()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_stops_listening() {
    let slow = Arc::new(Recorder {
        events: Mutex::new(Vec::new()),
        answer: Box::new(|_| Ok(json!({ "statusCode": 200, "body": "done" }))),
        delay: Duration::from_millis(300),
    });
    let gateway = spawn(vec![route("GET /slow", &slow, true)]).await;
    let url = format!("{}/slow", gateway.url());
    let addr = gateway.local_addr();
    let in_flight = tokio::spawn(async move {
        client()
            .get(url)
            .send_signed()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    while slow.events().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gateway.shutdown().await;
    assert_eq!(in_flight.await.unwrap(), "done");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_gateway() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("GET /version", &crypto, true)]).await;
    let addr = gateway.local_addr();
    drop(gateway);
    let mut stopped = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stopped,
        "still listening on {addr} after the handle was dropped"
    );
}

// ---- The IAM authorizer -------------------------------------------------------------------------

/// `(status, x-amzn-ErrorType, message)` of a refusal.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = message(response).await;
    (
        status,
        error_type,
        body["message"].as_str().unwrap().to_owned(),
    )
}

fn encrypt(gateway: &GatewayHandle, path: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}{path}", gateway.url()))
        .header("content-type", "application/json")
        .body(r#"{"plaintext":"aGk="}"#)
}

#[tokio::test]
async fn unsigned_mis_signed_stale_and_unknown_requests_are_403_before_the_function() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("POST /v1/encrypt", &crypto, true)]).await;

    let unsigned = encrypt(&gateway, "/v1/encrypt").send().await.unwrap();
    assert_eq!(
        refusal(unsigned).await,
        (
            403,
            "MissingAuthenticationTokenException".into(),
            "Forbidden".into()
        )
    );

    let mut wrong = alice();
    wrong.secret = SecretAccessKey::new("not alice's secret");
    let (status, error_type, text) =
        refusal(send_as(encrypt(&gateway, "/v1/encrypt"), &wrong, SystemTime::now()).await).await;
    assert_eq!(
        (status, error_type.as_str()),
        (403, "InvalidSignatureException")
    );
    assert!(
        text.starts_with(
            "The request signature we calculated does not match the signature you provided."
        ) && text.contains("POST\n/v1/encrypt\n\ncontent-type:application/json\nhost:127.0.0.1:"),
        "{text}"
    );

    let stale = SystemTime::now() - Duration::from_secs(16 * 60);
    let (status, error_type, text) =
        refusal(send_as(encrypt(&gateway, "/v1/encrypt"), &alice(), stale).await).await;
    assert_eq!(
        (status, error_type.as_str()),
        (403, "InvalidSignatureException")
    );
    assert!(text.starts_with("Signature expired: "), "{text}");
    // 14 minutes old is still current.
    let recent = SystemTime::now() - Duration::from_secs(14 * 60);
    let ok = send_as(encrypt(&gateway, "/v1/encrypt"), &alice(), recent).await;
    assert_eq!(ok.status(), 200);

    let mut stranger = alice();
    stranger.access_key_id = "AKIAUNKNOWNKEY000000".into();
    assert_eq!(
        refusal(
            send_as(
                encrypt(&gateway, "/v1/encrypt"),
                &stranger,
                SystemTime::now()
            )
            .await
        )
        .await,
        (
            403,
            "UnrecognizedClientException".into(),
            "The security token included in the request is invalid.".into()
        )
    );

    // A body changed after signing, or a token alice was never issued.
    let (client, request) = encrypt(&gateway, "/v1/encrypt").build_split();
    let mut request = request.unwrap();
    alice()
        .sign(&mut request, REGION, SystemTime::now())
        .unwrap();
    *request.body_mut() = Some(r#"{"plaintext":"aGl="}"#.into());
    let tampered = client.execute(request).await.unwrap();
    assert_eq!(refusal(tampered).await.1, "InvalidSignatureException");
    let mut with_token = alice();
    with_token.session_token = Some("FwoGZXIvYXdzEXAMPLE".into());
    assert_eq!(
        refusal(
            send_as(
                encrypt(&gateway, "/v1/encrypt"),
                &with_token,
                SystemTime::now()
            )
            .await
        )
        .await
        .1,
        "UnrecognizedClientException"
    );

    // Two Authorization headers are ambiguous.
    let (client, request) = encrypt(&gateway, "/v1/encrypt").build_split();
    let mut request = request.unwrap();
    alice()
        .sign(&mut request, REGION, SystemTime::now())
        .unwrap();
    let first = request.headers()["authorization"].clone();
    request.headers_mut().append("authorization", first);
    let doubled = client.execute(request).await.unwrap();
    assert_eq!(refusal(doubled).await.1, "IncompleteSignatureException");

    assert_eq!(
        crypto.events().len(),
        1,
        "only the recent, valid request ran"
    );
}

#[tokio::test]
async fn identity_policies_decide_per_route_and_changes_apply_at_once() {
    let crypto = Recorder::ok();
    let principals = principals();
    let key = alice().access_key_id;
    let payments_only = key_policy("a1b2c3d4e5", &["payments".to_owned()]);
    principals.set_policies(&key, vec![payments_only.clone()]);
    let gateway = spawn_for(
        vec![
            route("POST /v1/keys/{name}/encrypt", &crypto, true),
            route("GET /v1/keys/{name}", &crypto, true),
            route("POST /v1/encrypt", &crypto, true),
        ],
        MAX_BODY,
        principals.clone(),
    )
    .await;
    let status = |path: &'static str| {
        let request = encrypt(&gateway, path);
        async move {
            send_as(request, &alice(), SystemTime::now())
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/v1/keys/payments/encrypt").await, 200);
    let denied = send_as(
        encrypt(&gateway, "/v1/keys/orders/encrypt"),
        &alice(),
        SystemTime::now(),
    )
    .await;
    assert_eq!(
        refusal(denied).await,
        (
            403,
            "AccessDeniedException".into(),
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/$default/POST/v1/keys/orders/encrypt because no identity-based policy allows the execute-api:Invoke action".into()
        )
    );
    assert_eq!(status("/v1/encrypt").await, 403);
    let get = send_as(
        client().get(format!("{}/v1/keys/payments", gateway.url())),
        &alice(),
        SystemTime::now(),
    )
    .await;
    assert_eq!(get.status(), 200);

    // A wildcard allow, then an explicit deny of one key on top of it.
    principals.set_policies(&key, vec![r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:*","Resource":"arn:aws:execute-api:us-east-1:*:a1b2c3d4e5/$default/POST/v1/*"}}"#.to_owned()]);
    assert_eq!(status("/v1/keys/orders/encrypt").await, 200);
    assert_eq!(status("/v1/encrypt").await, 200);
    let deny_orders = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/*/*/v1/keys/orders/*"}]}"#;
    principals.set_policies(&key, vec![ALLOW_ALL.to_owned(), deny_orders.to_owned()]);
    let denied = send_as(
        encrypt(&gateway, "/v1/keys/orders/encrypt"),
        &alice(),
        SystemTime::now(),
    )
    .await;
    let (status_code, error_type, text) = refusal(denied).await;
    assert_eq!(
        (status_code, error_type.as_str()),
        (403, "AccessDeniedException")
    );
    assert!(
        text.ends_with("with an explicit deny in an identity-based policy"),
        "{text}"
    );
    assert_eq!(status("/v1/keys/payments/encrypt").await, 200);

    // No policy at all: denied.
    principals.set_policies(&key, vec![]);
    assert_eq!(status("/v1/keys/payments/encrypt").await, 403);
}

/// Callers issued through moto's IAM: real user ids in the event, and a policy changed in moto
/// taking effect on the next request.
#[tokio::test]
async fn callers_issued_through_moto_are_authorized_by_their_policies_in_moto() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("callers_issued_through_moto") else {
        return;
    };
    let aws = ssm_testkit::aws_config(&endpoint).await;
    let state = tempfile::tempdir().unwrap();
    let callers = Arc::new(IamCallers::open(&aws, state.path().join("callers.json")).unwrap());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("payments-{}", &suffix[..8]);
    let caller = callers
        .create(&name, &key_policy("a1b2c3d4e5", &["payments".to_owned()]))
        .await
        .unwrap();
    assert!(
        caller.user_arn.ends_with(&format!(":user/{name}")),
        "{caller:?}"
    );
    let stored = std::fs::read_to_string(state.path().join("callers.json")).unwrap();
    assert!(stored.contains(&caller.credentials.access_key_id));

    let crypto = Recorder::ok();
    let gateway = spawn_for(
        vec![route("POST /v1/keys/{name}/encrypt", &crypto, true)],
        MAX_BODY,
        callers.clone(),
    )
    .await;
    let as_caller = |path: &'static str| {
        let request = encrypt(&gateway, path);
        let credentials = caller.credentials.clone();
        async move { send_as(request, &credentials, SystemTime::now()).await }
    };
    assert_eq!(as_caller("/v1/keys/payments/encrypt").await.status(), 200);
    let iam = &crypto.only_event()["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["accessKey"], caller.credentials.access_key_id.as_str());
    assert_eq!(iam["userArn"], caller.user_arn.as_str());
    let user_id = iam["userId"].as_str().unwrap();
    // moto's user ids are 20 random characters, not IAM's AIDA…; what matters is they are GetUser's.
    assert_eq!(user_id.len(), 20, "{iam}");
    assert_eq!(iam["callerId"], user_id);
    assert_eq!(iam["accountId"], caller.user_arn.split(':').nth(4).unwrap());
    assert_eq!(
        refusal(as_caller("/v1/keys/orders/encrypt").await).await.1,
        "AccessDeniedException"
    );

    // The policy changes in moto: orders allowed, payments no longer.
    callers
        .put_policy(&name, &key_policy("a1b2c3d4e5", &["orders".to_owned()]))
        .await
        .unwrap();
    assert_eq!(as_caller("/v1/keys/orders/encrypt").await.status(), 200);
    assert_eq!(as_caller("/v1/keys/payments/encrypt").await.status(), 403);

    // A managed policy attached in moto counts too; an explicit deny in it wins.
    let iam_client = aws_sdk_iam::Client::new(&aws);
    let managed = iam_client
        .create_policy()
        .policy_name(format!("deny-orders-{}", &suffix[..8]))
        .policy_document(r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/$default/*/v1/keys/orders/*"}}"#)
        .send()
        .await
        .unwrap();
    iam_client
        .attach_user_policy()
        .user_name(&name)
        .policy_arn(managed.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();
    let (status, _, text) = refusal(as_caller("/v1/keys/orders/encrypt").await).await;
    assert_eq!(status, 403);
    assert!(text.contains("explicit deny"), "{text}");

    // A deactivated key is unknown.
    iam_client
        .update_access_key()
        .user_name(&name)
        .access_key_id(&caller.credentials.access_key_id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(as_caller("/v1/keys/orders/encrypt").await).await.1,
        "UnrecognizedClientException"
    );
}

/// Signs with botocore (`execute-api`, us-east-1) and sends; prints the status.
const BOTOCORE_SEND: &str = r#"
import sys, urllib.error, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, key, secret, body = sys.argv[1:5]
request = AWSRequest(method="POST", url=url, data=body.encode(), headers={"content-type": "application/json"})
SigV4Auth(Credentials(key, secret), "execute-api", "us-east-1").add_auth(request)
prepared = request.prepare()
sent = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
try:
    print(urllib.request.urlopen(sent).status)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;

/// What the docs tell callers to use, curl's `--aws-sigv4` and botocore's signer, sign requests
/// the gateway accepts (independent implementations of the canonical request; botocore's with
/// escapes and an unsorted query), and what they sign with a wrong secret is refused. curl before
/// 8.2 neither sorts the query nor encodes the path a second time, as SigV4 wants (API Gateway
/// refuses those too), so its request has neither.
#[tokio::test]
async fn requests_signed_by_curl_and_botocore_are_accepted() {
    let crypto = Recorder::ok();
    let gateway = spawn(vec![route("POST /v1/keys/{name}/encrypt", &crypto, true)]).await;
    let url = format!(
        "{}/v1/keys/pay%20ments/encrypt?b=2&a=x%20y&a=1&c=",
        gateway.url()
    );
    let curl_url = format!("{}/v1/keys/payments/encrypt?a=1&b=x%20y", gateway.url());
    let body = r#"{"plaintext":"aGk="}"#;
    let (key, secret) = (alice().access_key_id, alice().secret.expose().to_owned());
    let curl = |secret: String| {
        tokio::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "--aws-sigv4",
                "aws:amz:us-east-1:execute-api",
            ])
            .args(["--user", &format!("{key}:{secret}"), "-X", "POST"])
            .args([
                "-H",
                "content-type: application/json",
                "-d",
                body,
                &curl_url,
            ])
            .output()
    };
    match curl(secret.clone()).await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.ends_with("\n200"), "curl: {text}");
            let wrong = curl("wrong".into()).await.unwrap();
            assert!(String::from_utf8_lossy(&wrong.stdout).ends_with("\n403"));
        }
        Err(e) => eprintln!("skipping curl's signature: {e}"),
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let python = std::env::var("SSM_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"))
        .join("bin/python");
    if python.is_file() {
        let out = tokio::process::Command::new(&python)
            .args(["-c", BOTOCORE_SEND, &url, &key, &secret, body])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "200",
            "botocore: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("skipping botocore's signature: no {}", python.display());
    }
    for event in crypto.events() {
        assert_eq!(
            event["requestContext"]["authorizer"]["iam"]["accessKey"],
            key.as_str()
        );
    }
}
