"""moto server that can deploy the synthesized Serverless SSM stacks.

moto 5.2.5's CloudFormation silently skips resource types it has no model for (a `Ref` to one
resolves to None). This launcher defines models for the types our templates use and moto lacks,
each backed by the real moto backend of its service, so the resources exist afterwards and read
back through the normal APIs; then it runs moto's own server entry point, same flags as
`moto_server`:

    python sandbox/moto/ssm_moto.py -H 127.0.0.1 -p 5000

moto's CloudFormation finds models through `CloudFormationModel.__subclasses__()` (cached on first
use, which is the first stack operation, after this module has run), so defining the classes
registers them. Each class therefore subclasses `CloudFormationModel` directly; what they share
comes from the `_Resource` mixin. Two small patches at the end fix moto where no model can: change
sets publish outputs and exports, PutEvents skips schedule-only rules, EventBridge deliveries keep
the event's "account", and SQS event source mappings are left to the sandbox, which runs the
functions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from moto.apigatewayv2.exceptions import ApiNotFound
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.events.models import Rule
from moto.events.utils import EventTemplateParser
from moto.iam.models import iam_backends
from moto.secretsmanager.exceptions import SecretNotFoundException
from moto.secretsmanager.models import secretsmanager_backends
from moto.server import main as moto_server_main
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import Queue as SqsQueue
from moto.sqs.models import sqs_backends
from moto.utilities.utils import get_partition

# moto files every model under the service named by the second part of its module
# (`moto.<service>.models`), which this file, run as `__main__`, lacks: give the models one.
MODULE = "moto.ssm_sandbox"

Props = dict[str, Any]


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys as the REST JSON (camelCase) that apigatewayv2 stores."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


@contextlib.contextmanager
def _unless_parent_gone() -> Iterator[None]:
    """For deleting a part: moto deletes a stack's resources in no particular order (retrying what
    fails), so the secret, API, queue or function it belongs to, and the part with it, may be gone."""
    try:
        yield
    except (SecretNotFoundException, ApiNotFound, QueueDoesNotExist, UnknownFunctionException):
        pass


class _Resource:
    """What every model here shares: the template's properties, `Ref`, `Fn::GetAtt`, update."""

    # GetAtt name -> instance attribute.
    ATTRIBUTES: dict[str, str] = {}

    def __init__(self, name: str, account_id: str, region: str, props: Props) -> None:
        # The physical name CloudFormation gives it (from the type's name property, or made up),
        # for the resources that have one.
        self.name = name
        self.account_id = account_id
        self.region = region
        self.props = props

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attr: str) -> Any:
        if attr not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attr])

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> _Resource:
        resource = cls(resource_name, account_id, region_name, cloudformation_json["Properties"])
        resource.create()
        return resource

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: _Resource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _Resource:
        original_resource.update(cloudformation_json["Properties"])
        return original_resource

    def create(self) -> None:
        raise NotImplementedError

    def update(self, props: Props) -> None:
        """In place by default: most models here write with put-like calls."""
        self.props = props
        self.create()

    def delete(self, account_id: str, region_name: str) -> None:
        """Called by moto's stack update and delete (not for DeletionPolicy Retain)."""


# --- Secrets Manager ---------------------------------------------------------------------------


class SecretsManagerSecret(_Resource, CloudFormationModel):
    """`AWS::SecretsManager::Secret`: Ref and GetAtt Id are the ARN."""

    __module__ = MODULE
    ATTRIBUTES = {"Id": "arn"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @property
    def backend(self) -> Any:
        return secretsmanager_backends[self.account_id][self.region]

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def secret_string(self) -> str | None:
        """The SecretString, or one generated as GenerateSecretString says (None for neither)."""
        if "SecretString" in self.props:
            return self.props["SecretString"]
        spec = self.props.get("GenerateSecretString")
        if spec is None:
            return None
        password = json.loads(
            self.backend.get_random_password(
                password_length=spec.get("PasswordLength", 32),
                exclude_characters=spec.get("ExcludeCharacters", ""),
                exclude_numbers=spec.get("ExcludeNumbers", False),
                exclude_punctuation=spec.get("ExcludePunctuation", False),
                exclude_uppercase=spec.get("ExcludeUppercase", False),
                exclude_lowercase=spec.get("ExcludeLowercase", False),
                include_space=spec.get("IncludeSpace", False),
                require_each_included_type=spec.get("RequireEachIncludedType", True),
            )
        )["RandomPassword"]
        if "GenerateStringKey" not in spec:
            return password
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)

    def create(self) -> None:
        self.backend.create_secret(
            name=self.name,
            secret_string=self.secret_string(),
            secret_binary=None,
            description=self.props.get("Description"),
            tags=self.props.get("Tags"),
            kms_key_id=self.props.get("KmsKeyId"),
            client_request_token=str(uuid.uuid4()),
            replica_regions=self.props.get("ReplicaRegions", []),
            force_overwrite=False,
        )
        self.arn = self.backend.describe_secret(self.name).arn

    def update(self, props: Props) -> None:
        # As CloudFormation does: a new value only if the template's value changed, so an
        # update does not undo what the rotation Lambda or an operator wrote since.
        value_changed = any(
            props.get(key) != self.props.get(key)
            for key in ("SecretString", "GenerateSecretString")
        )
        self.props = props
        self.backend.update_secret(
            secret_id=self.arn,
            secret_string=self.secret_string() if value_changed else None,
            client_request_token=str(uuid.uuid4()),
            kms_key_id=props.get("KmsKeyId"),
            description=props.get("Description"),
        )

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend.delete_secret(
            self.arn, recovery_window_in_days=None, force_delete_without_recovery=True
        )


class SecretsManagerRotationSchedule(_Resource, CloudFormationModel):
    """`AWS::SecretsManager::RotationSchedule`, recorded on the secret, nothing invoked.

    moto's RotateSecret would invoke the rotation function, which moto can only run in docker
    (the sandbox runs our Lambdas itself), so this sets the rotation fields DescribeSecret reports
    and invokes nothing. AWS would also rotate at once (RotateImmediatelyOnUpdate); here the
    secret keeps its template value until something runs the first rotation.
    """

    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::RotationSchedule"

    @property
    def physical_resource_id(self) -> str:
        return self.props["SecretId"]

    def _secret(self) -> Any:
        return secretsmanager_backends[self.account_id][self.region].describe_secret(
            self.props["SecretId"]
        )

    def create(self) -> None:
        secret = self._secret()
        days = self.props.get("RotationRules", {}).get("AutomaticallyAfterDays", 0)
        secret.rotation_requested = True
        secret.rotation_lambda_arn = self.props.get("RotationLambdaARN", "")
        secret.auto_rotate_after_days = days
        secret.rotation_enabled = True
        secret.next_rotation_date = int(time.time()) + days * 86400

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            secret = self._secret()
            secret.rotation_enabled = False
            secret.rotation_lambda_arn = ""
            secret.auto_rotate_after_days = 0


class SecretsManagerResourcePolicy(_Resource, CloudFormationModel):
    """`AWS::SecretsManager::ResourcePolicy` via PutResourcePolicy; Ref is the secret's ARN."""

    __module__ = MODULE
    ATTRIBUTES = {"Id": "physical_resource_id"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::ResourcePolicy"

    @property
    def physical_resource_id(self) -> str:
        return self.props["SecretId"]

    def create(self) -> None:
        policy = self.props["ResourcePolicy"]
        secretsmanager_backends[self.account_id][self.region].put_resource_policy(
            self.props["SecretId"], policy if isinstance(policy, str) else json.dumps(policy)
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            secretsmanager_backends[account_id][region_name].delete_resource_policy(
                self.props["SecretId"]
            )


# --- API Gateway v2 (HTTP APIs) ----------------------------------------------------------------


class _HttpApiResource(_Resource):
    @property
    def backend(self) -> Any:
        return apigatewayv2_backends[self.account_id][self.region]


class ApiGatewayV2Api(_HttpApiResource, CloudFormationModel):
    """`AWS::ApiGatewayV2::Api` (no Body/BodyS3Location import, no quick create)."""

    __module__ = MODULE
    ATTRIBUTES = {"ApiId": "physical_resource_id", "ApiEndpoint": "api_endpoint"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @property
    def physical_resource_id(self) -> str:
        return self.api.api_id

    @property
    def api_endpoint(self) -> str:
        return self.api.api_endpoint

    def _settings(self) -> dict[str, Any]:
        p = self.props
        return {
            "api_key_selection_expression": p.get("ApiKeySelectionExpression"),
            "cors_configuration": _camel(p.get("CorsConfiguration")),
            "description": p.get("Description"),
            "disable_schema_validation": p.get("DisableSchemaValidation"),
            "disable_execute_api_endpoint": p.get("DisableExecuteApiEndpoint"),
            "name": p.get("Name"),
            "route_selection_expression": p.get("RouteSelectionExpression"),
            "version": p.get("Version"),
        }

    def create(self) -> None:
        if {"Body", "BodyS3Location", "Target"} & self.props.keys():
            raise NotImplementedError(f"{self.name}: OpenAPI import or quick create")
        self.api = self.backend.create_api(
            protocol_type=self.props.get("ProtocolType", "HTTP"),
            tags=self.props.get("Tags", {}),
            **self._settings(),
        )

    def update(self, props: Props) -> None:
        self.props = props
        self.backend.update_api(api_id=self.api.api_id, **self._settings())

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend.delete_api(self.api.api_id)


class ApiGatewayV2Integration(_HttpApiResource, CloudFormationModel):
    """`AWS::ApiGatewayV2::Integration`; Ref and GetAtt IntegrationId are its id."""

    __module__ = MODULE
    ATTRIBUTES = {"IntegrationId": "physical_resource_id"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @property
    def physical_resource_id(self) -> str:
        return self.integration.id

    def _settings(self) -> dict[str, Any]:
        p = self.props
        return {
            "connection_id": p.get("ConnectionId"),
            "connection_type": p.get("ConnectionType", "INTERNET"),
            "content_handling_strategy": p.get("ContentHandlingStrategy"),
            "credentials_arn": p.get("CredentialsArn"),
            "description": p.get("Description"),
            "integration_method": p.get("IntegrationMethod"),
            "integration_subtype": p.get("IntegrationSubtype"),
            "integration_type": p["IntegrationType"],
            "integration_uri": p.get("IntegrationUri"),
            "passthrough_behavior": p.get("PassthroughBehavior"),
            "payload_format_version": p.get("PayloadFormatVersion"),
            "request_parameters": p.get("RequestParameters"),
            "request_templates": p.get("RequestTemplates"),
            "response_parameters": p.get("ResponseParameters"),
            "template_selection_expression": p.get("TemplateSelectionExpression"),
            "timeout_in_millis": p.get("TimeoutInMillis"),
            "tls_config": _camel(p.get("TlsConfig")),
        }

    def create(self) -> None:
        self.integration = self.backend.create_integration(
            api_id=self.props["ApiId"], **self._settings()
        )

    def update(self, props: Props) -> None:
        self.props = props
        self.backend.update_integration(
            api_id=self.props["ApiId"], integration_id=self.integration.id, **self._settings()
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            self.backend.delete_integration(self.props["ApiId"], self.integration.id)


class ApiGatewayV2Route(_HttpApiResource, CloudFormationModel):
    """`AWS::ApiGatewayV2::Route`: RouteKey, AuthorizationType, Target `integrations/<id>`."""

    __module__ = MODULE
    ATTRIBUTES = {"RouteId": "physical_resource_id"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @property
    def physical_resource_id(self) -> str:
        return self.route.route_id

    def _settings(self) -> dict[str, Any]:
        p = self.props
        return {
            "api_key_required": p.get("ApiKeyRequired", False),
            "authorization_scopes": p.get("AuthorizationScopes", []),
            "authorization_type": p.get("AuthorizationType", "NONE"),
            "authorizer_id": p.get("AuthorizerId"),
            "model_selection_expression": p.get("ModelSelectionExpression"),
            "operation_name": p.get("OperationName"),
            "request_models": p.get("RequestModels"),
            "request_parameters": _camel(p.get("RequestParameters")),
            "route_key": p["RouteKey"],
            "route_response_selection_expression": p.get("RouteResponseSelectionExpression"),
            "target": p.get("Target"),
        }

    def create(self) -> None:
        self.route = self.backend.create_route(api_id=self.props["ApiId"], **self._settings())

    def update(self, props: Props) -> None:
        self.props = props
        self.backend.update_route(
            api_id=self.props["ApiId"], route_id=self.route.route_id, **self._settings()
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            self.backend.delete_route(self.props["ApiId"], self.route.route_id)


class ApiGatewayV2Stage(_HttpApiResource, CloudFormationModel):
    """`AWS::ApiGatewayV2::Stage`; Ref is the stage name. Updated by replacing the stage."""

    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Stage"

    @property
    def physical_resource_id(self) -> str:
        return self.props["StageName"]

    def create(self) -> None:
        # moto keeps the CreateStage request body. The keys of StageVariables, Tags and
        # RouteSettings (route keys) are names, not fields: they stay as they are.
        named = ("ApiId", "StageVariables", "Tags", "RouteSettings")
        config = _camel({k: v for k, v in self.props.items() if k not in named})
        config["stageVariables"] = self.props.get("StageVariables", {})
        config["tags"] = self.props.get("Tags", {})
        config["routeSettings"] = {
            route: _camel(settings)
            for route, settings in self.props.get("RouteSettings", {}).items()
        }
        self.backend.create_stage(self.props["ApiId"], config)

    def update(self, props: Props) -> None:
        self.delete(self.account_id, self.region)
        self.props = props
        self.create()

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            self.backend.delete_stage(self.props["ApiId"], self.props["StageName"])


# --- CloudWatch, SQS, Lambda -------------------------------------------------------------------


class CloudWatchAlarm(_Resource, CloudFormationModel):
    """`AWS::CloudWatch::Alarm` via PutMetricAlarm (single-metric alarms; no `Metrics` math)."""

    __module__ = MODULE
    ATTRIBUTES = {"Arn": "arn"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def create(self) -> None:
        p = self.props
        if "Metrics" in p:
            raise NotImplementedError(f"{self.name}: alarms on metric math (Metrics)")
        alarm = cloudwatch_backends[self.account_id][self.region].put_metric_alarm(
            name=self.name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=p["EvaluationPeriods"],
            period=p.get("Period"),
            threshold=p.get("Threshold"),
            statistic=p.get("Statistic"),
            extended_statistic=p.get("ExtendedStatistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []),
            datapoints_to_alarm=p.get("DatapointsToAlarm"),
            unit=p.get("Unit"),
            actions_enabled=p.get("ActionsEnabled", True),
            treat_missing_data=p.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=p.get("ThresholdMetricId"),
            tags=p.get("Tags"),
        )
        self.arn = alarm.alarm_arn

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])


class SqsQueuePolicy(_Resource, CloudFormationModel):
    """`AWS::SQS::QueuePolicy`: sets the `Policy` attribute of every queue listed (by URL)."""

    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def _set(self, queue_urls: list[str], policy: str) -> None:
        backend = sqs_backends[self.account_id][self.region]
        for url in queue_urls:
            with _unless_parent_gone():
                backend.set_queue_attributes(url.rsplit("/", 1)[-1], {"Policy": policy})

    def create(self) -> None:
        self._set(self.props["Queues"], json.dumps(self.props["PolicyDocument"]))

    def update(self, props: Props) -> None:
        self._set([q for q in self.props["Queues"] if q not in props["Queues"]], "")
        self.props = props
        self.create()

    def delete(self, account_id: str, region_name: str) -> None:
        self._set(self.props["Queues"], "")


class LambdaEventInvokeConfig(_Resource, CloudFormationModel):
    """`AWS::Lambda::EventInvokeConfig` via PutFunctionEventInvokeConfig."""

    __module__ = MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @property
    def physical_resource_id(self) -> str:
        return f"{self.props['FunctionName']}:{self.props.get('Qualifier', '$LATEST')}"

    def create(self) -> None:
        config = {
            k: self.props[k]
            for k in ("DestinationConfig", "MaximumEventAgeInSeconds", "MaximumRetryAttempts")
            if k in self.props
        }
        lambda_backend(self.account_id, self.region).put_function_event_invoke_config(
            self.props["FunctionName"], config
        )

    def update(self, props: Props) -> None:
        # moto's Put appends a second config instead of replacing the first.
        self.delete(self.account_id, self.region)
        self.props = props
        self.create()

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            lambda_backend(account_id, region_name).delete_function_event_invoke_config(
                self.props["FunctionName"]
            )


class LambdaUrl(_Resource, CloudFormationModel):
    """`AWS::Lambda::Url`; GetAtt FunctionUrl is moto's made-up https URL (nothing answers it)."""

    __module__ = MODULE
    ATTRIBUTES = {"FunctionUrl": "function_url", "FunctionArn": "function_arn"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Url"

    @property
    def physical_resource_id(self) -> str:
        return self.function_arn

    def _config(self) -> dict[str, Any]:
        return {k: self.props[k] for k in ("AuthType", "Cors", "InvokeMode") if k in self.props}

    def create(self) -> None:
        url = lambda_backend(self.account_id, self.region).create_function_url_config(
            self.props["TargetFunctionArn"], self._config()
        )
        self.function_url = url.url
        self.function_arn = url.function.function_arn

    def update(self, props: Props) -> None:
        self.props = props
        lambda_backend(self.account_id, self.region).update_function_url_config(
            props["TargetFunctionArn"], self._config()
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with _unless_parent_gone():
            lambda_backend(account_id, region_name).delete_function_url_config(self.function_arn)


# --- IAM ---------------------------------------------------------------------------------------


class IamOidcProvider(_Resource, CloudFormationModel):
    """`AWS::IAM::OIDCProvider` (SsmGitHubOidc); Ref and GetAtt Arn are its ARN."""

    __module__ = MODULE
    ATTRIBUTES = {"Arn": "arn"}

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IAM::OIDCProvider"

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @property
    def backend(self) -> Any:
        return iam_backends[self.account_id][get_partition(self.region)]

    def create(self) -> None:
        self.arn = self.backend.create_open_id_connect_provider(
            url=self.props["Url"],
            thumbprint_list=self.props.get("ThumbprintList", []),
            client_id_list=self.props.get("ClientIdList", []),
            tags=self.props.get("Tags", []),
        ).arn

    def update(self, props: Props) -> None:
        self.delete(self.account_id, self.region)
        self.props = props
        self.create()

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend.delete_open_id_connect_provider(self.arn)


# --- Two patches of moto itself, unavoidable ----------------------------------------------------
#
# Change sets (our deploy Action uses nothing else): moto 5.2.5 gives only stacks made by
# CreateStack what a change set needs as well. A stack that a CREATE change set makes has no
# exports to import from (so SsmServerless' Fn::ImportValue of the App's Function URL fails "No
# export named ..."), and executing any change set leaves the stack's Outputs as they were (none
# after a CREATE) and publishes no exports.


def _execute_change_set_with_outputs(original: Any) -> Any:
    @functools.wraps(original)
    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        stack = self.describe_change_set(change_set_name).stack
        stack.resource_map.cross_stack_resources = self.exports
        original(self, change_set_name, stack_name)
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export

    return execute_change_set


CloudFormationBackend.execute_change_set = _execute_change_set_with_outputs(
    CloudFormationBackend.execute_change_set
)


# EventBridge: moto's PutEvents offers every event to every rule of the bus, and a rule with only a
# ScheduleExpression has an empty pattern, which moto matches to everything. So each event also
# reaches the DriftSweepRule, whose target is a Lambda, which moto's delivery does not know
# (NotImplementedError: a 500 for the whole PutEvents, after the matching rules before it in the
# bus already delivered, so a retrying client delivers those again). In AWS a schedule-only rule
# never receives events.
def _skip_schedule_only_rules(original: Any) -> Any:
    @functools.wraps(original)
    def send_to_targets(self: Any, event: Any, transform_input: bool = True) -> None:
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        original(self, event, transform_input)

    return send_to_targets


Rule.send_to_targets = _skip_schedule_only_rules(Rule.send_to_targets)


# EventBridge targets: without an InputTransformer, AWS delivers the whole event; moto's default
# template drops its "account" field, which every EventBridge event has (and the integrity
# function requires). Put it back.
EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = (
    '{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", '
    '"source": "<source>", "account": "<account>", "region": "<region>", '
    '"resources": <resources>, "detail": <detail>}'
)


# SQS event source mappings: moto acts as Lambda's poller itself. On every SendMessage it
# receives the batch, "invokes" the function (a no-op without Docker) and deletes the messages,
# so the real integrity function would never see them. The sandbox is Lambda's poller (it runs
# the function and honours batchItemFailures), so a queue keeps no mapping here; the mapping
# itself still exists and reads back through the Lambda API.
class _NoMappings(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


SqsQueue.lambda_event_source_mappings = property(  # type: ignore[assignment]
    lambda self: _NoMappings(), lambda self, value: None
)


if __name__ == "__main__":
    moto_server_main(sys.argv[1:])
