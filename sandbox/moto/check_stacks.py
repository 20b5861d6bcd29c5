"""Checks the stacks that sandbox/moto/check.sh deployed into moto against their templates.

Every resource of a type our launcher models (and the SQS, EventBridge and Lambda parts around
them) is read back through its service's own API and compared with the template, its `Ref` and
`Fn::GetAtt` resolved to what the stack made. Then an out-of-band change, as CloudTrail reports
it, is put on the default bus and must reach the integrity queue through OutOfBandChangeRule,
as must the same call made by CloudFormation (the integrity Lambda decides whether it was for
this stack), while one that failed must not.

    python sandbox/moto/check_stacks.py CLOUD_ASSEMBLY_DIR    # AWS_ENDPOINT_URL etc. from env
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}

aws = {
    name: boto3.client(name, region_name=REGION)
    for name in ("cloudformation", "secretsmanager", "apigatewayv2", "cloudwatch", "sqs",
                 "events", "lambda", "iam")
}


class Stack:
    """A deployed stack: its template, and `Ref`/`Fn::GetAtt` resolved against moto."""

    def __init__(self, name: str, template: dict[str, Any]) -> None:
        self.name = name
        self.resources: dict[str, Any] = template["Resources"]
        self.outputs: dict[str, Any] = template.get("Outputs", {})
        summaries = aws["cloudformation"].list_stack_resources(StackName=name)
        self.physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in summaries["StackResourceSummaries"]
        }

    def of_type(self, resource_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (logical_id, r.get("Properties", {}))
            for logical_id, r in self.resources.items()
            if r["Type"] == resource_type
        ]

    def arn(self, logical_id: str) -> str:
        physical = self.physical[logical_id]
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::SQS::Queue":
            attributes = aws["sqs"].get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )
            return attributes["Attributes"]["QueueArn"]
        if kind == "AWS::Events::Rule":
            return aws["events"].describe_rule(Name=physical)["Arn"]
        if kind == "AWS::Lambda::Function":
            return aws["lambda"].get_function(FunctionName=physical)["Configuration"]["FunctionArn"]
        if kind == "AWS::IAM::Role":
            return aws["iam"].get_role(RoleName=physical)["Role"]["Arn"]
        raise AssertionError(f"no ARN lookup for {kind}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return PSEUDO.get(value["Ref"]) or self.physical[value["Ref"]]
        if "Fn::GetAtt" in value:
            logical_id, attr = value["Fn::GetAtt"]
            if attr == "QueueName":
                return self.physical[logical_id].rsplit("/", 1)[-1]
            assert attr == "Arn", f"no lookup for GetAtt {attr}"
            return self.arn(logical_id)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(p) for p in self.resolve(parts))
        return {k: self.resolve(v) for k, v in value.items()}


def same(what: str, actual: Any, expected: Any) -> None:
    assert actual == expected, f"{what}: got {actual!r}, template says {expected!r}"


def check_secrets(stack: Stack) -> None:
    sm = aws["secretsmanager"]
    for logical_id, props in stack.of_type("AWS::SecretsManager::Secret"):
        arn = stack.physical[logical_id]
        same(f"{logical_id} Description", sm.describe_secret(SecretId=arn)["Description"],
             props["Description"])
        value = sm.get_secret_value(SecretId=arn)["SecretString"]
        if "SecretString" in props:
            same(f"{logical_id} SecretString", value, props["SecretString"])
        else:
            spec = props["GenerateSecretString"]
            if "GenerateStringKey" in spec:
                # The template's JSON with the generated password under that key.
                document = json.loads(value)
                value = document.pop(spec["GenerateStringKey"])
                same(f"{logical_id} SecretStringTemplate", document,
                     json.loads(spec["SecretStringTemplate"]))
            same(f"{logical_id} length", len(value), spec.get("PasswordLength", 32))
            if spec.get("ExcludePunctuation"):
                assert value.isalnum(), f"{logical_id}: punctuation in {value!r}"
    for logical_id, props in stack.of_type("AWS::SecretsManager::RotationSchedule"):
        secret = sm.describe_secret(SecretId=stack.resolve(props["SecretId"]))
        same(f"{logical_id} RotationEnabled", secret["RotationEnabled"], True)
        same(f"{logical_id} RotationLambdaARN", secret["RotationLambdaARN"],
             stack.resolve(props["RotationLambdaARN"]))
        same(f"{logical_id} RotationRules", secret["RotationRules"], props["RotationRules"])
    for logical_id, props in stack.of_type("AWS::SecretsManager::ResourcePolicy"):
        policy = sm.get_resource_policy(SecretId=stack.resolve(props["SecretId"]))
        same(f"{logical_id} policy", json.loads(policy["ResourcePolicy"]),
             stack.resolve(props["ResourcePolicy"]))


def check_http_apis(stack: Stack) -> None:
    apigw = aws["apigatewayv2"]
    for logical_id, props in stack.of_type("AWS::ApiGatewayV2::Api"):
        api = apigw.get_api(ApiId=stack.physical[logical_id])
        same(f"{logical_id} ProtocolType", api["ProtocolType"], props["ProtocolType"])
    for logical_id, props in stack.of_type("AWS::ApiGatewayV2::Integration"):
        got = apigw.get_integration(
            ApiId=stack.resolve(props["ApiId"]), IntegrationId=stack.physical[logical_id]
        )
        for key in ("IntegrationType", "IntegrationUri", "PayloadFormatVersion"):
            same(f"{logical_id} {key}", got[key], stack.resolve(props[key]))
    routes: dict[str, set[tuple[str, str, str]]] = {}
    for _, props in stack.of_type("AWS::ApiGatewayV2::Route"):
        routes.setdefault(stack.resolve(props["ApiId"]), set()).add(
            (props["RouteKey"], props["AuthorizationType"], stack.resolve(props["Target"]))
        )
    for api_id, expected in routes.items():
        items = apigw.get_routes(ApiId=api_id)["Items"]
        same(f"routes of {api_id}",
             {(r["RouteKey"], r["AuthorizationType"], r["Target"]) for r in items}, expected)
    for logical_id, props in stack.of_type("AWS::ApiGatewayV2::Stage"):
        got = apigw.get_stage(ApiId=stack.resolve(props["ApiId"]), StageName=props["StageName"])
        same(f"{logical_id} AutoDeploy", got.get("AutoDeploy"), props.get("AutoDeploy"))


def check_alarms(stack: Stack) -> None:
    for logical_id, props in stack.of_type("AWS::CloudWatch::Alarm"):
        [alarm] = aws["cloudwatch"].describe_alarms(AlarmNames=[stack.physical[logical_id]])[
            "MetricAlarms"
        ]
        for key in ("MetricName", "Namespace", "ComparisonOperator", "EvaluationPeriods",
                    "Period", "Statistic", "TreatMissingData", "Dimensions"):
            same(f"{logical_id} {key}", alarm[key], stack.resolve(props[key]))
        same(f"{logical_id} Threshold", alarm["Threshold"], float(props["Threshold"]))
        same(f"{logical_id} AlarmDescription", alarm["AlarmDescription"],
             props["AlarmDescription"])


def check_queues_and_rules(stack: Stack) -> None:
    for logical_id, props in stack.of_type("AWS::SQS::QueuePolicy"):
        expected = stack.resolve(props["PolicyDocument"])
        for url in stack.resolve(props["Queues"]):
            attributes = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
            same(f"{logical_id} on {url}", json.loads(attributes["Attributes"]["Policy"]),
                 expected)
    for logical_id, props in stack.of_type("AWS::Events::Rule"):
        name = stack.physical[logical_id]
        rule = aws["events"].describe_rule(Name=name)
        if "EventPattern" in props:
            same(f"{logical_id} EventPattern", json.loads(rule["EventPattern"]),
                 props["EventPattern"])
        same(f"{logical_id} ScheduleExpression", rule.get("ScheduleExpression"),
             props.get("ScheduleExpression"))
        targets = aws["events"].list_targets_by_rule(Rule=name)["Targets"]
        same(f"{logical_id} targets", [(t["Id"], t["Arn"]) for t in targets],
             [(t["Id"], stack.resolve(t["Arn"])) for t in props["Targets"]])


def check_lambda_extras(stack: Stack) -> None:
    for logical_id, props in stack.of_type("AWS::Lambda::EventInvokeConfig"):
        got = aws["lambda"].get_function_event_invoke_config(
            FunctionName=stack.resolve(props["FunctionName"])
        )
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"):
            same(f"{logical_id} {key}", got[key], stack.resolve(props[key]))
    for logical_id, props in stack.of_type("AWS::Lambda::Url"):
        got = aws["lambda"].get_function_url_config(
            FunctionName=stack.resolve(props["TargetFunctionArn"])
        )
        same(f"{logical_id} AuthType", got["AuthType"], props["AuthType"])
    for logical_id, props in stack.of_type("AWS::IAM::OIDCProvider"):
        got = aws["iam"].get_open_id_connect_provider(
            OpenIDConnectProviderArn=stack.physical[logical_id]
        )
        same(f"{logical_id} ClientIDList", got["ClientIDList"], props["ClientIdList"])


def check_outputs(stack: Stack) -> None:
    [described] = aws["cloudformation"].describe_stacks(StackName=stack.name)["Stacks"]
    assert described["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), described
    got = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    same(f"{stack.name} output keys", sorted(got), sorted(stack.outputs))
    assert all(got.values()), f"{stack.name}: empty outputs {got}"


def check_out_of_band_routing(stack: Stack) -> None:
    """A console edit of the crypto function reaches the integrity queue, and so does
    CloudFormation's call (for which stack is the integrity Lambda's decision); failed calls do
    not."""
    queue = stack.physical[next(lid for lid, _ in stack.of_type("AWS::SQS::Queue")
                                if lid.startswith("IntegrityQueue"))]
    function = stack.physical[next(lid for lid, _ in stack.of_type("AWS::Lambda::Function")
                                   if lid.startswith("CryptoFunction"))]

    def deliveries(**changes: Any) -> int:
        identity = {"type": "AssumedRole",
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/someone"}
        if "invokedBy" in changes:
            identity["invokedBy"] = changes.pop("invokedBy")
        detail = {"eventVersion": "1.08", "userIdentity": identity,
                  "eventSource": "lambda.amazonaws.com",
                  "eventName": "UpdateFunctionConfiguration20150331v2", "awsRegion": REGION,
                  "requestParameters": {"functionName": function}, **changes}
        put = aws["events"].put_events(Entries=[{
            "Source": "aws.lambda", "DetailType": "AWS API Call via CloudTrail",
            "Detail": json.dumps(detail)}])
        assert put["FailedEntryCount"] == 0, put
        got = aws["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=1).get("Messages", [])
        for message in got:
            aws["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            same("routed event", body["detail"]["requestParameters"]["functionName"], function)
        return len(got)

    same("deliveries of an out-of-band change", deliveries(), 1)
    same("deliveries of CloudFormation's change",
         deliveries(invokedBy="cloudformation.amazonaws.com"), 1)
    same("deliveries of a failed call", deliveries(errorCode="AccessDenied"), 0)


def main(assembly: Path) -> None:
    manifest = json.loads((assembly / "manifest.json").read_text())
    for artifact_id, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        props = artifact["properties"]
        stack = Stack(props.get("stackName", artifact_id),
                      json.loads((assembly / props["templateFile"]).read_text()))
        for check in (check_outputs, check_secrets, check_http_apis, check_alarms,
                      check_queues_and_rules, check_lambda_extras):
            check(stack)
        if "OutOfBandChangeRule" in " ".join(stack.resources):
            check_out_of_band_routing(stack)
        print(f"{stack.name}: {len(stack.resources)} resources as the template says",
              file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
