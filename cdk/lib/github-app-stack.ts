/**
 * `SsmGitHubApp`: the GitHub App (`ssm-app`: webhook receiver and token broker) on Lambda.
 *
 * - The function runs `ssm-app` as a plain web server (`bootstrap` in its zip) behind the AWS
 *   Lambda Web Adapter, an external extension from a layer (`/opt/extensions/lambda-adapter`,
 *   built from its crates.io crate by `scripts/build-app-lambda.sh`). The adapter waits until
 *   `GET /healthz` answers, then turns each Function URL event into an HTTP request to
 *   127.0.0.1:8080 and the response back into the event's answer. Both zips are CDK file assets,
 *   so the deploy Action publishes them like the other functions' code.
 * - A Function URL (HTTPS, AuthType NONE): the App authenticates every request itself, webhooks by
 *   their HMAC signature and token requests by a signed `sts:GetCallerIdentity`. Being anonymous,
 *   it is bounded: the function has reserved concurrency (a flood of `/v1/tokens` throttles this
 *   function, never the account's other functions, the crypto API or rotation among them), and
 *   `/metrics` is not served on it (ssm-app serves metrics only on `SSM_METRICS_LISTEN`, unset here).
 * - Two secrets, the App's private key and its webhook secret, that only this function's role may
 *   read (its policy grants it; each secret's resource policy denies every other principal). Their
 *   values never pass through the template: GitHub makes the key at registration.
 * - A log group with retention and alarms on errors, throttles and 5xx answers.
 */
import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { integrityRoleName, type SsmConfig } from './config';
import { lambdaArchitecture, lambdaCode, layerCode } from './lambda-assets';

/** The Web Adapter release the layer holds; `scripts/build-app-lambda.sh` pins the same one. */
export const LWA_VERSION = '0.9.1';
/** Where ssm-app listens inside the execution environment; the adapter forwards there. */
export const APP_PORT = 8080;
/** Longest token request: a GitHub call with its retries (ssm-app's defaults) fits well inside. */
export const APP_TIMEOUT = Duration.seconds(30);
/**
 * Concurrent executions reserved for (and capping) the App. A token request takes tens of
 * milliseconds when its token and identity are cached and about a second when minted, so ten
 * environments serve hundreds of requests a second, far above what CI callers and GitHub's
 * webhooks send; an anonymous flood beyond it is throttled (429) here instead of taking the
 * account's unreserved concurrency. The account's unreserved pool must keep its minimum on top.
 */
export const APP_RESERVED_CONCURRENCY = 10;

export interface GitHubAppStackProps extends StackProps {
  readonly config: SsmConfig;
  /** The audience token requests must be bound to (the integrity Lambda signs the same one). */
  readonly audience: string;
  /**
   * Reserved (and maximum) concurrent executions of the App; `APP_RESERVED_CONCURRENCY` by default,
   * `null` for none (an account whose concurrency quota cannot spare it, e.g. a new one at 10).
   */
  readonly reservedConcurrency?: number | null;
}

export class GitHubAppStack extends Stack {
  readonly appFunction: lambda.Function;
  readonly functionUrl: lambda.FunctionUrl;
  readonly privateKeySecret: secretsmanager.Secret;
  readonly webhookSecret: secretsmanager.Secret;
  readonly alarms: cloudwatch.Alarm[];
  /** The broker's base URL, `https://<id>.lambda-url.<region>.on.aws` (no trailing slash). */
  readonly brokerUrl: string;

  constructor(scope: Construct, id: string, props: GitHubAppStackProps) {
    super(scope, id, props);
    const { config } = props;

    const logGroup = new logs.LogGroup(this, 'AppLogs', {
      retention: config.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(this, 'AppRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Serverless SSM GitHub App (execution role)',
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );

    this.privateKeySecret = this.appSecret(
      'PrivateKey',
      'GitHub App private key (PEM), stored by `ssm-app setup` or the operator after registration; readable by the App function only',
      role,
    );
    this.webhookSecret = this.appSecret(
      'WebhookSecret',
      'GitHub App webhook secret: the string, or a JSON list ["new", "old"] during a rotation; readable by the App function only',
      role,
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAppSecrets',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.privateKeySecret.secretArn, this.webhookSecret.secretArn],
      }),
    );

    const adapter = new lambda.LayerVersion(this, 'WebAdapterLayer', {
      description: `AWS Lambda Web Adapter ${LWA_VERSION} (crate lambda_web_adapter, built from crates.io)`,
      code: layerCode(config.lambdaAssetDir, 'lambda-adapter', config.architecture),
      compatibleRuntimes: [lambda.Runtime.PROVIDED_AL2023],
      compatibleArchitectures: [lambdaArchitecture(config.architecture)],
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const environment: Record<string, string> = {
      // The Web Adapter: where the App listens, and when it is ready.
      AWS_LWA_PORT: String(APP_PORT),
      AWS_LWA_READINESS_CHECK_PATH: '/healthz',
      SSM_APP_LISTEN: `127.0.0.1:${APP_PORT}`,
      // The App: secrets by id (never by value), its audience and policy.
      GITHUB_APP_PRIVATE_KEY_SECRET_ID: this.privateKeySecret.secretArn,
      GITHUB_WEBHOOK_SECRET_ID: this.webhookSecret.secretArn,
      GITHUB_API_URL: config.githubApiUrl,
      SSM_BROKER_AUDIENCE: props.audience,
      SSM_BROKER_POLICY: this.brokerPolicy(config),
      SSM_LOG_FORMAT: 'json',
    };
    if (config.githubAppId !== undefined) environment.GITHUB_APP_ID = config.githubAppId;

    this.appFunction = new lambda.Function(this, 'AppFunction', {
      description: 'Serverless SSM GitHub App: webhooks and installation-token broker (ssm-app behind the Web Adapter)',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      // One setting for every function and the layer; synth checks each zip's executable matches.
      architecture: lambdaArchitecture(config.architecture),
      handler: 'bootstrap',
      code: lambdaCode(config.lambdaAssetDir, 'ssm-app', config.architecture),
      layers: [adapter],
      memorySize: 256,
      timeout: APP_TIMEOUT,
      reservedConcurrentExecutions:
        props.reservedConcurrency === null ? undefined : (props.reservedConcurrency ?? APP_RESERVED_CONCURRENCY),
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      environment,
    });

    this.functionUrl = this.appFunction.addFunctionUrl({
      // GitHub's webhooks and the broker's callers cannot sign for Lambda: the App authenticates
      // every request itself (HMAC-SHA256 webhooks, SigV4-signed STS identities).
      authType: lambda.FunctionUrlAuthType.NONE,
      invokeMode: lambda.InvokeMode.BUFFERED,
    });
    // The URL ends in '/'; the broker URL is the origin: https:// + its host.
    this.brokerUrl = `https://${Fn.select(2, Fn.split('/', this.functionUrl.url))}`;

    this.alarms = [
      this.alarm('ErrorsAlarm', 'The GitHub App function failed (init or invocation errors)', this.appFunction.metricErrors()),
      this.alarm('ThrottlesAlarm', 'The GitHub App function was throttled', this.appFunction.metricThrottles()),
      this.alarm(
        'ServerErrorsAlarm',
        'The GitHub App answered 5xx (GitHub or STS unreachable, or the App not ready)',
        this.appFunction.metric('Url5xxCount'),
      ),
    ];

    // The one source of the broker's URL and audience: SsmServerless imports both (and an
    // export cannot change or vanish while it is imported).
    const exports = brokerExportNames(this.stackName);
    new CfnOutput(this, 'BrokerUrl', {
      value: this.brokerUrl,
      description: 'The token broker base URL (HTTPS): SsmServerless passes it to the integrity Lambda',
      exportName: exports.url,
    });
    new CfnOutput(this, 'BrokerAudience', {
      value: props.audience,
      description: "The audience token requests are bound to: SsmServerless's integrity Lambda signs this one",
      exportName: exports.audience,
    });
    new CfnOutput(this, 'WebhookUrl', {
      value: `${this.brokerUrl}/webhooks`,
      description: "The GitHub App's webhook URL (registration)",
    });
    new CfnOutput(this, 'PrivateKeySecretArn', { value: this.privateKeySecret.secretArn });
    new CfnOutput(this, 'WebhookSecretArn', { value: this.webhookSecret.secretArn });
    new CfnOutput(this, 'AppFunctionName', { value: this.appFunction.functionName });
  }

  /**
   * A secret only `reader` may read: created with a random placeholder (CloudFormation cannot create
   * a secret without a value; the key comes from GitHub), retained, and with a resource policy that
   * denies GetSecretValue to every other principal, administrators included.
   */
  private appSecret(id: string, description: string, reader: iam.Role): secretsmanager.Secret {
    const secret = new secretsmanager.Secret(this, id, {
      description,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    secret.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheAppReads',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['secretsmanager:GetSecretValue'],
        resources: ['*'],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': reader.roleArn } },
      }),
    );
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'GitHub creates App private keys and webhook secrets (GitHub has no API to create an App key), so ' +
        'Secrets Manager cannot rotate them; they are rotated in the App settings and stored here.',
    });
    return secret;
  }

  /**
   * The broker policy: the integrity role of this deployment's SsmServerless (by its derived
   * name, so the App stack deploys before it, once) may get `contents: write` on this repository,
   * for its `repository_dispatch`; then the rules of the `brokerPolicy` setting.
   */
  private brokerPolicy(config: SsmConfig): string {
    const integrity = {
      principal: `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/${integrityRoleName(config.serverlessStackName)}`,
      repositories: [`${config.githubOwner}/${config.githubRepo}`],
      permissions: { contents: 'write' },
    };
    const { rules } = JSON.parse(config.brokerPolicy) as { rules: unknown[] };
    return this.toJsonString({ rules: [integrity, ...rules] });
  }

  private alarm(id: string, description: string, metric: cloudwatch.Metric): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric: metric.with({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

/** The exports SsmServerless reads the hosted broker's URL and audience from. */
export function brokerExportNames(appStackName: string): { url: string; audience: string } {
  return { url: `${appStackName}:BrokerUrl`, audience: `${appStackName}:BrokerAudience` };
}

/** The audience of a hosted broker: unique to the account, region and stack. */
export function defaultAudience(appStackName: string): string {
  return `ssm-broker:${Aws.ACCOUNT_ID}:${Aws.REGION}:${appStackName}`;
}
