/**
 * `SsmServerless`: the software security module itself.
 *
 * - Keyring secret, created as `{"lineage": "<random>"}` (Secrets Manager generates the id: no
 *   keyring and no key material in the template) and initialised, then rotated on a schedule, by
 *   the rotation Lambda, which never starts a new lineage over keys. Retained when the stack is
 *   deleted.
 * - Crypto Lambda behind an HTTP API, every route IAM-authorized (SigV4), stage throttling and
 *   JSON access logs.
 * - Integrity Lambda, fed by an SQS queue (batching window, DLQ, alarm on DLQ depth) that an
 *   EventBridge rule fills with out-of-band CloudTrail calls, and invoked by a scheduled rule for
 *   the drift sweep; an alarm on its configuration-error metric.
 * - Every function has its own role that can do only what the function does, and its own log
 *   group with retention.
 */
import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { bootstrapRoleArn, roleArnByName } from './bootstrap';
import { ConfigError, integrityRoleName, type SsmConfig } from './config';
import { INTEGRITY_EVENT_PATTERN } from './event-pattern';
import { checkKeyCapacity, DEFAULT_KEY, DEFAULT_KEY_ENVIRONMENT_BYTES, keyRoutes } from './keys';
import { CODE_SHA256_METADATA, type LambdaBin, lambdaArchitecture, lambdaCodeWithSha256 } from './lambda-assets';

export interface ServerlessStackProps extends StackProps {
  readonly config: SsmConfig;
}

/** The Crypto API's routes; every one is IAM-authorized. */
export const API_ROUTES: ReadonlyArray<{ method: apigwv2.HttpMethod; path: string }> = [
  { method: apigwv2.HttpMethod.POST, path: '/v1/encrypt' },
  { method: apigwv2.HttpMethod.POST, path: '/v1/decrypt' },
  { method: apigwv2.HttpMethod.POST, path: '/v1/rewrap' },
  { method: apigwv2.HttpMethod.POST, path: '/v1/datakey' },
  { method: apigwv2.HttpMethod.GET, path: '/v1/keys' },
  { method: apigwv2.HttpMethod.GET, path: '/version' },
  { method: apigwv2.HttpMethod.POST, path: '/wrap' },
  { method: apigwv2.HttpMethod.POST, path: '/unwrap' },
];

/**
 * The initial secret value, `{"lineage": "<32 random alphanumerics>"}`: an uninitialised keyring
 * whose lineage id Secrets Manager generates at creation (ssm_core::keyring::Lineage). The first
 * (immediate) rotation adds its first version. The template holds no keyring document, so no
 * template change can write an empty keyring; a changed generator writes a new uninitialised value,
 * over which rotation continues the stored keyring (docs/envelope.md, "Lineages").
 */
/**
 * The keyring secret's resource policy: only `readers` may read the value, only `writers` may
 * write versions or move labels, whatever identity policies say elsewhere in the account.
 * Declared in the template, so CloudFormation drift detection sees a changed policy and a
 * deploy puts it back.
 */
export function keyringResourcePolicy(roles: { readers: string[]; writers: string[] }): Record<string, unknown> {
  const denyAllBut = (sid: string, principals: string[], actions: string[]) => ({
    Sid: sid,
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Action: actions,
    Resource: '*',
    Condition: { ArnNotEquals: { 'aws:PrincipalArn': principals } },
  });
  return {
    Version: '2012-10-17',
    Statement: [
      denyAllBut('OnlyKeyringReaders', roles.readers, ['secretsmanager:GetSecretValue']),
      denyAllBut('OnlyKeyringWriters', roles.writers, [
        'secretsmanager:PutSecretValue',
        'secretsmanager:UpdateSecretVersionStage',
      ]),
    ],
  };
}

export const KEYRING_INITIAL_VALUE: secretsmanager.SecretStringGenerator = {
  secretStringTemplate: '{}',
  generateStringKey: 'lineage',
  passwordLength: 32,
  excludePunctuation: true,
};

/** The crypto Lambda's timeout: well under the HTTP API's 30 s integration limit. */
export const CRYPTO_TIMEOUT = Duration.seconds(10);
/** Namespace of the integrity Lambda's EMF metrics (`ssm_core::integrity::configuration`). */
export const INTEGRITY_METRIC_NAMESPACE = 'ServerlessSSM/Integrity';
/** The integrity Lambda's timeout: a drift sweep polls DetectStackDrift to completion. */
export const INTEGRITY_TIMEOUT = Duration.minutes(5);

interface RustFunctionProps {
  readonly bin: LambdaBin;
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment?: Record<string, string>;
  /** A fixed role name, for a role another stack names (generated when absent). */
  readonly roleName?: string;
}

/** One key's keyring: its secret and what protects and rotates it (keys.ts). */
export interface KeyringResources {
  readonly name: string;
  readonly secret: secretsmanager.Secret;
  /** The keyring's customer-managed key: only the keyring's readers and writers may use it. */
  readonly key: kms.CfnKey;
  /** Who may read and write the keyring's value (declared, so CloudFormation drift covers it). */
  readonly policy: secretsmanager.CfnResourcePolicy;
  readonly rotation: secretsmanager.CfnRotationSchedule;
}

export class ServerlessStack extends Stack {
  /** The `default` key's keyring (the original routes'). */
  readonly keyring: secretsmanager.Secret;
  /** The keyring's customer-managed key: only the keyring's readers and writers may use it. */
  readonly keyringKey: kms.CfnKey;
  /** Who may read and write the keyring's value (declared, so CloudFormation drift covers it). */
  readonly keyringPolicy: secretsmanager.CfnResourcePolicy;
  /** Every key's keyring, `default` first (setting `keys`). */
  readonly keyrings: KeyringResources[] = [];
  readonly cryptoFunction: lambda.Function;
  readonly rotationFunction: lambda.Function;
  readonly integrityFunction: lambda.Function;
  readonly api: apigwv2.HttpApi;
  readonly integrityQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly deadLetterAlarm: cloudwatch.Alarm;
  readonly configurationAlarm: cloudwatch.Alarm;
  private readonly integritySource: SqsEventSource;

  private readonly config: SsmConfig;

  constructor(scope: Construct, id: string, props: ServerlessStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.config = config;
    if (!config.brokerUrl || !config.brokerAudience) {
      throw new ConfigError(
        'the token broker is not set: pass -c brokerUrl=https://BROKER (and optionally -c brokerAudience=...), ' +
          'the GitHub App that gives the integrity Lambda its installation tokens',
      );
    }

    // ---- Keyring ---------------------------------------------------------------------------
    this.keyring = new secretsmanager.Secret(this, 'Keyring', {
      description: 'Serverless SSM keyring (all key versions); written by the rotation Lambda and the ssm-keyring operator CLI',
      // Not a secret: an uninitialised keyring. Key material is generated by the rotation Lambda.
      generateSecretString: KEYRING_INITIAL_VALUE,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Named keys (keys.ts): each its own secret, created like the default's, under `Keyring-<name>`.
    const namedKeys = config.keys.filter((k) => k.name !== DEFAULT_KEY);
    const keyScopes = new Map(namedKeys.map((k) => [k.name, new Construct(this, `Keyring-${k.name}`)]));
    const namedSecrets = namedKeys.map(
      (k) =>
        new secretsmanager.Secret(keyScopes.get(k.name)!, 'Secret', {
          description: `Serverless SSM keyring of the key '${k.name}' (all its versions); written by the rotation Lambda and the ssm-keyring operator CLI`,
          generateSecretString: KEYRING_INITIAL_VALUE,
          removalPolicy: RemovalPolicy.RETAIN,
        }),
    );
    const secrets = [this.keyring, ...namedSecrets];
    const secretArns = secrets.map((s) => s.secretArn);
    const keyringsVariable: Record<string, string> =
      namedKeys.length === 0
        ? {}
        : { SSM_KEYRINGS: namedKeys.map((k, i) => `${k.name}=${namedSecrets[i].secretArn}`).join(',') };

    // ---- Crypto API ------------------------------------------------------------------------
    this.cryptoFunction = this.rustFunction('Crypto', {
      bin: 'ssm-crypto',
      description: 'Serverless SSM Crypto API',
      memorySize: 256,
      timeout: CRYPTO_TIMEOUT,
      environment: {
        SSM_KEY_SECRET_ID: this.keyring.secretArn,
        SSM_KEYRING_TTL_SECS: String(config.keyringTtlSecs),
        // `name=<secret ARN>,...` for every key but `default` (CONTRACT-21).
        ...keyringsVariable,
      },
    });
    this.cryptoFunction.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadKeyring',
        actions: ['secretsmanager:GetSecretValue'],
        resources: secretArns,
      }),
    );

    const accessLogs = this.logGroup('ApiAccessLogs');
    this.api = new apigwv2.HttpApi(this, 'CryptoApi', {
      description: 'Serverless SSM Crypto API (SigV4: every route is IAM-authorized)',
      defaultAuthorizer: new HttpIamAuthorizer(),
      createDefaultStage: false,
    });
    new apigwv2.HttpStage(this, 'CryptoApiStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: config.apiThrottleRate, burstLimit: config.apiThrottleBurst },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTime',
            sourceIp: '$context.identity.sourceIp',
            caller: '$context.identity.userArn',
            routeKey: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationError: '$context.integrationErrorMessage',
            authError: '$context.authorizer.error',
          }),
        ),
      },
    });
    const integration = new HttpLambdaIntegration('CryptoIntegration', this.cryptoFunction, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    for (const route of API_ROUTES) {
      this.api.addRoutes({ path: route.path, methods: [route.method], integration });
    }
    this.keyRoutes(config);

    // ---- Rotation --------------------------------------------------------------------------
    this.rotationFunction = this.rustFunction('Rotation', {
      bin: 'ssm-rotation',
      description: 'Serverless SSM keyring rotation (Secrets Manager rotation protocol)',
      memorySize: 128,
      timeout: Duration.seconds(30),
    });
    this.rotationFunction.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'RotateKeyring',
        actions: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
          // A keyring reset: rotation looks for stored versions that hold keys and continues them.
          'secretsmanager:ListSecretVersionIds',
        ],
        resources: secretArns,
      }),
    );
    const rotationInvoke = new lambda.CfnPermission(this, 'RotationInvokedBySecretsManager', {
      action: 'lambda:InvokeFunction',
      functionName: this.rotationFunction.functionArn,
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });
    // Not `secret.addRotationSchedule`: that also grants secretsmanager:GetRandomPassword on `*`,
    // which this rotation does not need (keys come from the OS CSPRNG).
    const rotationSchedule = (scope: Construct, id: string, secret: secretsmanager.Secret, days: number) => {
      const schedule = new secretsmanager.CfnRotationSchedule(scope, id, {
        secretId: secret.secretArn,
        rotationLambdaArn: this.rotationFunction.functionArn,
        rotationRules: { automaticallyAfterDays: days },
        rotateImmediatelyOnUpdate: true,
      });
      // The immediate first rotation needs the invoke permission in place (the function, and so its
      // role policy, is already a dependency through rotationLambdaArn).
      schedule.addResourceDependency(rotationInvoke);
      return schedule;
    };
    const schedules = [
      rotationSchedule(this, 'KeyringRotation', this.keyring, config.keys[0].rotationDays),
      ...namedKeys.map((k, i) => rotationSchedule(keyScopes.get(k.name)!, 'Rotation', namedSecrets[i], k.rotationDays)),
    ];

    // ---- Keyring key and policy -------------------------------------------------------------
    const cfnExecRole = bootstrapRoleArn(this, config.bootstrapQualifier, 'cfn-exec');
    const operatorRole =
      config.keyringOperatorRoleName === undefined ? [] : [roleArnByName(this, config.keyringOperatorRoleName)];
    const cryptoRole = this.cryptoFunction.role!.roleArn;
    const rotationRole = this.rotationFunction.role!.roleArn;
    // Every key's the same way: the default's ids at the top (unchanged), a named key's under its scope.
    for (const [i, secret] of secrets.entries()) {
      const name = config.keys[i].name;
      const named = name !== DEFAULT_KEY;
      const scope = named ? keyScopes.get(name)! : this;
      const key = this.keyringKeyFor(scope, named ? 'Key' : 'KeyringKey', named ? name : undefined, {
        decrypt: [cryptoRole],
        readWrite: [rotationRole, ...operatorRole],
        // CloudFormation creates the secret (and writes a new initial value if the generator changes).
        create: [cfnExecRole],
      });
      // Set on the secret directly: `encryptionKey` would add a statement letting every principal of
      // the account use the key through Secrets Manager.
      (secret.node.defaultChild as secretsmanager.CfnSecret).kmsKeyId = key.attrArn;
      const policy = new secretsmanager.CfnResourcePolicy(scope, named ? 'Policy' : 'KeyringPolicy', {
        secretId: secret.secretArn,
        blockPublicPolicy: true,
        resourcePolicy: keyringResourcePolicy({
          readers: [cryptoRole, rotationRole, ...operatorRole],
          writers: [rotationRole, ...operatorRole],
        }),
      });
      this.keyrings.push({ name, secret, key, policy, rotation: schedules[i] });
    }
    this.keyringKey = this.keyrings[0].key;
    this.keyringPolicy = this.keyrings[0].policy;

    // ---- Integrity -------------------------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(this, 'IntegrityDeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.integrityQueue = new sqs.Queue(this, 'IntegrityQueue', {
      // AWS's guidance: at least six times the consumer's timeout.
      visibilityTimeout: Duration.seconds(INTEGRITY_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
    });
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'IntegrityDeadLetterAlarm', {
      alarmDescription: 'Integrity events failed repeatedly and are waiting in the dead-letter queue',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: 'Maximum',
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // The integrity function writes one EMF line per dispatch the broker or GitHub refuses for a
    // configuration error; this fires within minutes, long before the DLQ alarm would.
    this.configurationAlarm = new cloudwatch.Alarm(this, 'IntegrityConfigurationAlarm', {
      alarmDescription:
        'The token broker or GitHub refused a drift dispatch for a configuration error (the function log names ' +
        'the cause and the fix); the drift is kept and reaches the DLQ for a redrive once fixed',
      metric: new cloudwatch.Metric({
        namespace: INTEGRITY_METRIC_NAMESPACE,
        metricName: 'ConfigurationError',
        dimensionsMap: { Stack: this.stackName },
        period: Duration.minutes(5),
        statistic: 'Sum',
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const ignoredRoles = [
      roleArnByName(this, config.deployRoleName),
      bootstrapRoleArn(this, config.bootstrapQualifier, 'deploy'),
      this.rotationFunction.role!.roleArn,
    ];
    this.integrityFunction = this.rustFunction('Integrity', {
      bin: 'ssm-integrity',
      description: 'Serverless SSM integrity: out-of-band changes and drift sweep to repository_dispatch',
      memorySize: 256,
      timeout: INTEGRITY_TIMEOUT,
      // The App stack's broker policy names this role (integrityRoleName): no third deploy.
      roleName: integrityRoleName(this.stackName),
      environment: {
        SSM_STACK_NAME: this.stackName,
        SSM_GITHUB_REPOSITORY: `${config.githubOwner}/${config.githubRepo}`,
        SSM_BROKER_URL: config.brokerUrl,
        SSM_BROKER_AUDIENCE: config.brokerAudience,
        SSM_IGNORED_ROLE_ARNS: ignoredRoles.join(','),
        // Shared by every stack the bootstrap deploys: expected only during this stack's operations.
        SSM_CLOUDFORMATION_ROLE_ARNS: cfnExecRole,
        ...(operatorRole.length === 0 ? {} : { SSM_KEYRING_OPERATOR_ROLE_ARNS: operatorRole.join(',') }),
        SSM_GITHUB_API_URL: config.githubApiUrl,
        // DetectStackDrift is polled at most this long, leaving a minute of the timeout for the rest.
        SSM_DRIFT_TIMEOUT_SECS: String(INTEGRITY_TIMEOUT.toSeconds() - 60),
        // Unset: the Lambda signs for its own region's STS endpoint (output IntegrityStsEndpoint).
        ...(config.brokerStsEndpoint === undefined ? {} : { SSM_STS_ENDPOINT: config.brokerStsEndpoint }),
      },
    });
    this.integritySource = new SqsEventSource(this.integrityQueue, {
      batchSize: 10,
      maxBatchingWindow: Duration.seconds(30),
      reportBatchItemFailures: true,
      // A burst becomes few batches, hence few dispatches; 2 is the lowest value SQS allows.
      maxConcurrency: 2,
    });
    this.integrityFunction.addEventSource(this.integritySource);
    // A sweep that still fails after Lambda's retries lands in the DLQ too, so the alarm fires.
    this.integrityFunction.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new SqsDestination(this.deadLetterQueue),
    });

    const changes = new events.Rule(this, 'OutOfBandChangeRule', {
      description: 'Write calls to the services of this stack not made by CloudFormation',
      eventPattern: INTEGRITY_EVENT_PATTERN as events.EventPattern,
    });
    changes.addTarget(
      new targets.SqsQueue(this.integrityQueue, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(24),
      }),
    );

    const sweep = new events.Rule(this, 'DriftSweepRule', {
      description: 'Scheduled drift sweep of this stack',
      schedule: events.Schedule.expression(config.sweepSchedule),
    });
    sweep.addTarget(
      new targets.LambdaFunction(this.integrityFunction, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      }),
    );

    this.integrityReadPolicy([this.cryptoFunction, this.rotationFunction, this.integrityFunction]);

    if (config.createTrail) this.trail();

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint, description: 'Crypto API base URL (SigV4)' });
    new CfnOutput(this, 'KeyringSecretArn', { value: this.keyring.secretArn });
    if (namedKeys.length > 0) {
      new CfnOutput(this, 'KeyringSecretArns', {
        value: namedKeys.map((k, i) => `${k.name}=${namedSecrets[i].secretArn}`).join(','),
        description: "The named keys' keyring secrets, name=ARN (the default key's is KeyringSecretArn)",
      });
    }
    new CfnOutput(this, 'ApiExecuteArnPrefix', {
      value: `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${this.api.apiId}/$default`,
      description:
        "What callers' IAM policies allow execute-api:Invoke on, followed by /METHOD/path: e.g. " +
        '<prefix>/POST/v1/keys/NAME/* and <prefix>/GET/v1/keys/NAME for one key (docs/infrastructure.md)',
    });
    new CfnOutput(this, 'IntegrityQueueUrl', { value: this.integrityQueue.queueUrl });
    new CfnOutput(this, 'IntegrityDeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'IntegrityRoleArn', {
      value: this.integrityFunction.role!.roleArn,
      description: 'The role the token broker policy must allow for this repository (contents: write)',
    });
    new CfnOutput(this, 'IntegrityStsEndpoint', {
      value: config.brokerStsEndpoint ?? `https://sts.${Aws.REGION}.${Aws.URL_SUFFIX}/`,
      description:
        'The STS endpoint the integrity Lambda signs its broker identity for: the broker must accept it ' +
        "(one running in this region does by default; otherwise add this region to the broker's SSM_STS_ALLOWED_REGIONS)",
    });
    new CfnOutput(this, 'CryptoFunctionName', { value: this.cryptoFunction.functionName });
  }

  private logGroup(id: string): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention: this.config.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /**
   * The keyring's customer-managed key, rotated yearly. The account root may administer the key
   * (AWS requires an administrator, and without one the key could never be changed) but not use
   * it; only the named roles may, and only through Secrets Manager.
   */
  private keyringKeyFor(
    scope: Construct,
    id: string,
    keyName: string | undefined,
    roles: { decrypt: string[]; readWrite: string[]; create: string[] },
  ): kms.CfnKey {
    const viaSecretsManager = { StringEquals: { 'kms:ViaService': `secretsmanager.${Aws.REGION}.amazonaws.com` } };
    const use = (sid: string, principals: string[], actions: string[]) => ({
      Sid: sid,
      Effect: 'Allow',
      Principal: { AWS: principals },
      Action: actions,
      Resource: '*',
      Condition: viaSecretsManager,
    });
    const key = new kms.CfnKey(scope, id, {
      description:
        keyName === undefined
          ? 'Serverless SSM keyring secret (used only through Secrets Manager by the keyring roles)'
          : `Serverless SSM keyring secret of the key '${keyName}' (used only through Secrets Manager by the keyring roles)`,
      enableKeyRotation: true,
      keyPolicy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'AccountAdministersNotUses',
            Effect: 'Allow',
            Principal: { AWS: `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:root` },
            Action: [
              'kms:Create*',
              'kms:Describe*',
              'kms:Enable*',
              'kms:List*',
              'kms:Put*',
              'kms:Update*',
              'kms:Revoke*',
              'kms:Disable*',
              'kms:Get*',
              'kms:Delete*',
              'kms:TagResource',
              'kms:UntagResource',
              'kms:ScheduleKeyDeletion',
              'kms:CancelKeyDeletion',
              'kms:RotateKeyOnDemand',
            ],
            Resource: '*',
          },
          use('KeyringReaders', roles.decrypt, ['kms:Decrypt']),
          use('KeyringWriters', roles.readWrite, ['kms:Decrypt', 'kms:GenerateDataKey']),
          use('SecretCreation', roles.create, ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey']),
        ],
      },
    });
    key.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return key;
  }

  /**
   * Each key's routes (keys.ts), declared one by one: a name the stack has no key for stops at the
   * gateway (404), and each route's execute-api ARN names its key, so IAM authorizes per key. One
   * integration with a single API-scoped invoke permission serves them all: a permission per route
   * would grow the function's resource policy toward Lambda's 20 KB limit with every key.
   */
  private keyRoutes(config: SsmConfig): void {
    checkKeyCapacity(config.keys, API_ROUTES.length, DEFAULT_KEY_ENVIRONMENT_BYTES);
    const integration = new HttpLambdaIntegration('CryptoKeyIntegration', this.cryptoFunction, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
      scopePermissionToRoute: false,
    });
    for (const key of config.keys) {
      for (const route of keyRoutes(key.name)) {
        this.api.addRoutes({ path: route.path, methods: [route.method], integration });
      }
    }
  }

  /** A Rust function from its zip, with its own role and log group (no managed policies). */
  private rustFunction(id: string, props: RustFunctionProps): lambda.Function {
    const logGroup = this.logGroup(`${id}Logs`);
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (execution role)`,
      roleName: props.roleName,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const { code, sha256 } = lambdaCodeWithSha256(this.config.lambdaAssetDir, props.bin, this.config.architecture);
    const fn = new lambda.Function(this, `${id}Function`, {
      description: props.description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambdaArchitecture(this.config.architecture),
      handler: 'bootstrap',
      code,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      environment: props.environment,
    });
    // What the sweep compares the live code with (lambda-assets.ts, CODE_SHA256_METADATA).
    (fn.node.defaultChild as lambda.CfnFunction).addMetadata(CODE_SHA256_METADATA, sha256);
    return fn;
  }

  /**
   * The integrity function's read access: CloudFormation calls on this stack, and the read calls
   * drift detection makes with the caller's credentials for each resource type of the stack (the
   * read handlers' permissions in the CloudFormation resource schemas), narrowed to this stack's
   * resources. A separate policy (not the role's default policy, which the functions depend on) so
   * it can name the functions without a dependency cycle.
   *
   * Deliberately left out, so drift detection reports those resources as not checked (the event
   * rule still watches them): `secretsmanager:GetSecretValue` (the keyring secret's read handler
   * wants it; the integrity function must never be able to read keys, and the secret's value is
   * write-only to drift detection anyway), and the log groups' reads (`logs:DescribeLogGroups` and
   * `DescribeResourcePolicies` authorize only on every log group of the account).
   */
  private integrityReadPolicy(functions: lambda.Function[]): void {
    const roles = functions.map((f) => f.role!.roleArn);
    const apiArn = this.formatArn({ service: 'apigateway', account: '', resource: '/apis', resourceName: this.api.apiId });
    const policy = new iam.Policy(this, 'IntegrityReadPolicy', {
      roles: [this.integrityFunction.role!],
      statements: [
        new iam.PolicyStatement({
          sid: 'ThisStack',
          actions: [
            'cloudformation:DescribeStacks',
            // Whether CloudFormation's call was made for this stack: its operations' times.
            'cloudformation:DescribeStackEvents',
            'cloudformation:ListStackResources',
            'cloudformation:GetTemplate',
            'cloudformation:DetectStackDrift',
            'cloudformation:DetectStackResourceDrift',
            'cloudformation:DescribeStackResourceDrifts',
          ],
          resources: [this.stackId],
        }),
        new iam.PolicyStatement({
          sid: 'DriftDetectionStatus',
          actions: ['cloudformation:DescribeStackDriftDetectionStatus'],
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksFunctions',
          actions: [
            'lambda:GetFunction',
            'lambda:GetFunctionConfiguration',
            'lambda:GetFunctionCodeSigningConfig',
            'lambda:GetFunctionRecursionConfig',
            'lambda:GetRuntimeManagementConfig',
            'lambda:GetFunctionScalingConfig',
            'lambda:GetPolicy',
          ],
          resources: functions.map((f) => f.functionArn),
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksRoles',
          actions: ['iam:GetRole', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:ListAttachedRolePolicies'],
          resources: roles,
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksQueues',
          actions: ['sqs:GetQueueAttributes', 'sqs:ListQueueTags'],
          resources: [this.integrityQueue.queueArn, this.deadLetterQueue.queueArn],
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksKeyringMetadata',
          actions: ['secretsmanager:DescribeSecret'],
          resources: this.keyrings.map((k) => k.secret.secretArn),
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksEventSourceMapping',
          actions: ['lambda:GetEventSourceMapping', 'lambda:ListTags'],
          resources: [this.integritySource.eventSourceMappingArn],
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksAlarm',
          actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:ListTagsForResource'],
          resources: [this.deadLetterAlarm.alarmArn, this.configurationAlarm.alarmArn],
        }),
        new iam.PolicyStatement({
          sid: 'ThisStacksApi',
          actions: ['apigateway:GET'],
          resources: [apiArn, `${apiArn}/*`],
        }),
      ],
    });
    this.addRuleReadAccess(policy);

    Validations.of(policy).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'cloudformation:DescribeStackDriftDetectionStatus supports no resource-level permissions (the service ' +
          'authorization reference lists no resource type for it), so its statement needs "*"; it reveals only ' +
          'the status of a drift detection the function started.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::/apis/<${this.getLogicalId(this.api.node.defaultChild as apigwv2.CfnApi)}>/*]`,
        reason:
          "Drift detection reads the routes, integrations and stages of this stack's one API, whose ids are " +
          'assigned at deployment; the statement is confined to that API and to GET.',
      },
    );
  }

  /** events:DescribeRule on this stack's rules, added once they exist. */
  private addRuleReadAccess(policy: iam.Policy): void {
    const rules = this.node.children.filter((c): c is events.Rule => c instanceof events.Rule);
    policy.addStatements(
      new iam.PolicyStatement({
        sid: 'ThisStacksRules',
        actions: ['events:DescribeRule', 'events:ListTargetsByRule', 'events:ListTagsForResource'],
        resources: rules.map((r) => r.ruleArn),
      }),
    );
  }

  /** An optional trail: EventBridge receives CloudTrail management events only when a trail exists. */
  private trail(): void {
    const bucket = new s3.Bucket(this, 'TrailBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) }],
    });
    new cloudtrail.Trail(this, 'Trail', {
      bucket,
      isMultiRegionTrail: false,
      includeGlobalServiceEvents: true,
      enableFileValidation: true,
      managementEvents: cloudtrail.ReadWriteType.WRITE_ONLY,
    });
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This bucket receives CloudTrail log files only and is itself audited by CloudTrail; a server access ' +
        'log bucket for it would need an access log bucket in turn.',
    });
  }
}
