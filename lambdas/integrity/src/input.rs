//! What invoked the Lambda, converted at the edge: an SQS batch, a scheduled sweep, or something
//! else (logged and acknowledged, never a crash).

use serde::Deserialize;
use serde_json::Value;

/// One SQS message: its id (for `batchItemFailures`) and body (an EventBridge event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Sqs(Vec<Message>),
    /// An EventBridge scheduled event: run the sweep.
    Scheduled {
        id: String,
    },
    Unknown {
        description: String,
    },
}

#[derive(Deserialize)]
struct SqsEnvelope {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    event_source: Option<String>,
}

#[derive(Deserialize)]
struct Scheduled {
    id: String,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
}

impl Input {
    pub fn parse(payload: &Value) -> Input {
        if payload.get("Records").is_some() {
            return match SqsEnvelope::deserialize(payload) {
                Ok(env)
                    if env
                        .records
                        .iter()
                        .all(|r| r.event_source.as_deref().is_none_or(|s| s == "aws:sqs")) =>
                {
                    Input::Sqs(
                        env.records
                            .into_iter()
                            .map(|r| Message {
                                id: r.message_id,
                                body: r.body,
                            })
                            .collect(),
                    )
                }
                Ok(_) => Input::Unknown {
                    description: "Records from a source other than aws:sqs".into(),
                },
                Err(e) => Input::Unknown {
                    description: format!("malformed Records: {e}"),
                },
            };
        }
        match Scheduled::deserialize(payload) {
            Ok(s) if s.source == "aws.events" && s.detail_type == "Scheduled Event" => {
                Input::Scheduled { id: s.id }
            }
            Ok(s) => Input::Unknown {
                description: format!("event {:?} from {:?}", s.detail_type, s.source),
            },
            Err(_) => Input::Unknown {
                description: match payload {
                    Value::Object(map) => format!(
                        "object with keys {:?}",
                        map.keys().take(8).collect::<Vec<_>>()
                    ),
                    other => format!("a JSON {}", json_kind(other)),
                },
            },
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sqs_batch() {
        let input = Input::parse(&json!({"Records": [
            {"messageId": "m1", "receiptHandle": "r", "body": "{}", "attributes": {}, "messageAttributes": {},
             "md5OfBody": "x", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"},
            {"messageId": "m2", "body": "b", "eventSource": "aws:sqs"}]}));
        assert_eq!(
            input,
            Input::Sqs(vec![
                Message {
                    id: "m1".into(),
                    body: "{}".into()
                },
                Message {
                    id: "m2".into(),
                    body: "b".into()
                }
            ])
        );
    }

    #[test]
    fn scheduled_event() {
        let input = Input::parse(
            &json!({"version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "111122223333", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:111122223333:rule/sweep"], "detail": {}}),
        );
        assert_eq!(
            input,
            Input::Scheduled {
                id: "53dc4d37".into()
            }
        );
    }

    #[test]
    fn anything_else_is_unknown() {
        for payload in [
            json!(null),
            json!("hi"),
            json!({"hello": "world"}),
            json!({"Records": [{"eventSource": "aws:sns", "messageId": "x"}]}),
            json!({"Records": "nope"}),
            json!({"id": "1", "source": "aws.s3", "detail-type": "Object Created"}),
        ] {
            assert!(
                matches!(Input::parse(&payload), Input::Unknown { .. }),
                "{payload}"
            );
        }
    }
}
