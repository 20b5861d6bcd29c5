import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { asArray, fixtureZip, logicalIdOf, roleStatements, synth } from './helpers';

describe('SsmServerless', () => {
  const { serverlessTemplate: t } = synth();
  const resources = t.toJSON().Resources as Record<string, any>;
  const fnId = (bin: string) => logicalIdOf(t, 'AWS::Lambda::Function', (p) => String(p.Description).includes(bin));
  const cryptoId = fnId('Crypto API');
  const rotationId = fnId('rotation');
  const integrityId = fnId('integrity');
  const roleOf = (id: string) => resources[id].Properties.Role['Fn::GetAtt'][0];
  const secretId = logicalIdOf(t, 'AWS::SecretsManager::Secret');

  it('serves every route with IAM authorization and nothing else', () => {
    const routes = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route');
    assert.deepEqual(
      routes.map((r) => r.Properties.RouteKey).sort(),
      [
        'GET /v1/keys',
        'GET /version',
        'POST /unwrap',
        'POST /v1/datakey',
        'POST /v1/decrypt',
        'POST /v1/encrypt',
        'POST /v1/rewrap',
        'POST /wrap',
        // The default key's own routes (keys.test.ts covers named keys).
        'GET /v1/keys/default',
        'POST /v1/keys/default/datakey',
        'POST /v1/keys/default/decrypt',
        'POST /v1/keys/default/encrypt',
        'POST /v1/keys/default/hmac',
        'POST /v1/keys/default/rewrap',
        'POST /v1/keys/default/verify',
      ].sort(),
    );
    for (const r of routes) assert.equal(r.Properties.AuthorizationType, 'AWS_IAM', r.Properties.RouteKey);
    t.hasResourceProperties('AWS::ApiGatewayV2::Integration', { PayloadFormatVersion: '2.0', IntegrationType: 'AWS_PROXY' });
  });

  it('throttles the stage and writes access logs to a log group with retention', () => {
    const stage = resources[logicalIdOf(t, 'AWS::ApiGatewayV2::Stage')].Properties;
    assert.equal(stage.StageName, '$default');
    assert.equal(stage.AutoDeploy, true);
    assert.deepEqual(stage.DefaultRouteSettings, { ThrottlingBurstLimit: 100, ThrottlingRateLimit: 50 });
    const logGroup = resources[stage.AccessLogSettings.DestinationArn['Fn::GetAtt'][0]];
    assert.equal(logGroup.Properties.RetentionInDays, 30);
    const format = JSON.parse(stage.AccessLogSettings.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.equal(format.caller, '$context.identity.userArn');
  });

  it('runs the crypto Lambda small, JSON-logged, with a timeout under the gateway limit', () => {
    const p = resources[cryptoId].Properties;
    assert.equal(p.Runtime, 'provided.al2023');
    assert.equal(p.Handler, 'bootstrap');
    assert.deepEqual(p.Architectures, ['x86_64']);
    assert.equal(p.MemorySize, 256);
    assert.ok(p.Timeout < 30, `timeout ${p.Timeout}`);
    assert.equal(p.LoggingConfig.LogFormat, 'JSON');
    assert.deepEqual(p.Environment.Variables, { SSM_KEY_SECRET_ID: { Ref: secretId }, SSM_KEYRING_TTL_SECS: '300' });
  });

  it('gives every function its own log group with retention and no managed policy', () => {
    for (const id of [cryptoId, rotationId, integrityId]) {
      const p = resources[id].Properties;
      const lg = resources[p.LoggingConfig.LogGroup.Ref];
      assert.equal(lg.Type, 'AWS::Logs::LogGroup');
      assert.equal(lg.Properties.RetentionInDays, 30);
      assert.equal(resources[roleOf(id)].Properties.ManagedPolicyArns, undefined);
    }
    for (const lg of Object.values(resources).filter((r) => r.Type === 'AWS::Logs::LogGroup')) {
      assert.equal(lg.Properties.RetentionInDays, 30);
    }
  });

  it('creates the keyring empty, retained, and rotated on schedule (immediately on creation)', () => {
    const secret = resources[secretId];
    // No keyring in the template: Secrets Manager generates `{"lineage": "<32 alphanumerics>"}`.
    assert.equal(secret.Properties.SecretString, undefined);
    assert.deepEqual(secret.Properties.GenerateSecretString, {
      SecretStringTemplate: '{}',
      GenerateStringKey: 'lineage',
      PasswordLength: 32,
      ExcludePunctuation: true,
    });
    assert.ok(!JSON.stringify(t.toJSON()).includes('"keys"'), 'no keyring document anywhere in the template');
    assert.equal(secret.DeletionPolicy, 'Retain');
    assert.equal(secret.UpdateReplacePolicy, 'Retain');
    t.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      SecretId: { Ref: secretId },
      RotationLambdaARN: { 'Fn::GetAtt': [rotationId, 'Arn'] },
      RotationRules: { AutomaticallyAfterDays: 30 },
      RotateImmediatelyOnUpdate: true,
    });
    t.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: { 'Fn::GetAtt': [rotationId, 'Arn'] },
      Principal: 'secretsmanager.amazonaws.com',
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });

  it('records each function\'s CodeSha256 in its metadata: the zip synth published, not the bucket object', () => {
    const expected = (bin: string) => createHash('sha256').update(fixtureZip(bin)).digest('base64');
    assert.deepEqual(
      [cryptoId, rotationId, integrityId].map((id) => resources[id].Metadata['ssm:CodeSha256']),
      ['ssm-crypto', 'ssm-rotation', 'ssm-integrity'].map(expected),
    );
    for (const [id, r] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      assert.match(String(r.Metadata?.['ssm:CodeSha256']), /^[A-Za-z0-9+/]{43}=$/, `${id} records its code hash`);
    }
  });

  const withoutLogs = (id: string) =>
    roleStatements(t, roleOf(id)).filter((s) => s.Sid !== 'WriteOwnLogs');

  it('lets the crypto function read the one secret and nothing more', () => {
    assert.deepEqual(withoutLogs(cryptoId), [
      { Sid: 'ReadKeyring', Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: { Ref: secretId } },
    ]);
  });

  it("lets the rotation function stage versions of the one secret, without GetRandomPassword", () => {
    assert.deepEqual(withoutLogs(rotationId), [
      {
        Sid: 'RotateKeyring',
        Action: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
          'secretsmanager:ListSecretVersionIds',
        ],
        Effect: 'Allow',
        Resource: { Ref: secretId },
      },
    ]);
  });

  it('writes logs only to the function\'s own log group', () => {
    for (const id of [cryptoId, rotationId, integrityId]) {
      const logs = roleStatements(t, roleOf(id)).filter((s) => s.Sid === 'WriteOwnLogs');
      assert.deepEqual(logs, [
        {
          Sid: 'WriteOwnLogs',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [resources[id].Properties.LoggingConfig.LogGroup.Ref, 'Arn'] },
        },
      ]);
    }
  });

  it("confines the integrity function's CloudFormation and Lambda reads to this stack", () => {
    const statements = roleStatements(t, roleOf(integrityId));
    const stack = statements.find((s) => s.Sid === 'ThisStack');
    assert.deepEqual(stack?.Resource, { Ref: 'AWS::StackId' });
    for (const a of [
      'cloudformation:ListStackResources',
      'cloudformation:DescribeStacks',
      'cloudformation:DetectStackDrift',
      'cloudformation:DescribeStackResourceDrifts',
      'cloudformation:GetTemplate',
    ]) {
      assert.ok(stack?.Action.includes(a), a);
    }
    const fns = statements.find((s) => s.Sid === 'ThisStacksFunctions');
    assert.ok(fns?.Action.includes('lambda:GetFunction'));
    assert.deepEqual(
      fns?.Resource.map((r: any) => r['Fn::GetAtt'][0]).sort(),
      [cryptoId, integrityId, rotationId].sort(),
    );
    // The sweep reads no asset object: it compares with the hash the template records.
    assert.ok(!JSON.stringify(statements).includes('s3:'), 'no S3 access for the integrity function');
    // The event source mapping and the alarm by their own ids.
    const esmId = logicalIdOf(t, 'AWS::Lambda::EventSourceMapping');
    const esm = statements.find((s) => s.Sid === 'ThisStacksEventSourceMapping');
    assert.ok(JSON.stringify(esm?.Resource).includes(JSON.stringify({ Ref: esmId })));
    const alarm = statements.find((s) => s.Sid === 'ThisStacksAlarm');
    const alarmIds = Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm')
      .map(([id]) => id);
    assert.equal(alarmIds.length, 2);
    assert.deepEqual(
      alarm?.Resource,
      alarmIds.map((id) => ({ 'Fn::GetAtt': [id, 'Arn'] })),
    );
    // Secret metadata for drift detection, never its value.
    const all = statements.flatMap((s) => asArray<string>(s.Action));
    assert.ok(!all.includes('secretsmanager:GetSecretValue'));
    // SQS consumption from the integrity queue only.
    const queueId = logicalIdOf(t, 'AWS::SQS::Queue', (p) => p.RedrivePolicy !== undefined);
    const consume = statements.filter((s) => asArray<string>(s.Action).includes('sqs:ReceiveMessage'));
    assert.deepEqual(consume.map((s) => s.Resource), [{ 'Fn::GetAtt': [queueId, 'Arn'] }]);
  });

  it('configures the integrity function by environment', () => {
    const vars = resources[integrityId].Properties.Environment.Variables;
    assert.deepEqual(Object.keys(vars).sort(), [
      'SSM_BROKER_AUDIENCE',
      'SSM_BROKER_URL',
      'SSM_CLOUDFORMATION_ROLE_ARNS',
      'SSM_DRIFT_TIMEOUT_SECS',
      'SSM_GITHUB_API_URL',
      'SSM_GITHUB_REPOSITORY',
      'SSM_IGNORED_ROLE_ARNS',
      'SSM_STACK_NAME',
    ]);
    assert.equal(vars.SSM_STACK_NAME, 'SsmServerless');
    assert.equal(vars.SSM_GITHUB_REPOSITORY, 'acme/serverless-ssm');
    assert.equal(vars.SSM_BROKER_URL, 'https://broker.example.com');
    // The hosted App's audience comes from its stack, never from a setting (broker-audience.test.ts).
    assert.deepEqual(vars.SSM_BROKER_AUDIENCE, { 'Fn::ImportValue': 'SsmGitHubApp:BrokerAudience' });
    assert.equal(vars.SSM_GITHUB_API_URL, 'https://api.github.com');
    assert.ok(Number(vars.SSM_DRIFT_TIMEOUT_SECS) < resources[integrityId].Properties.Timeout);
    const ignored = JSON.stringify(vars.SSM_IGNORED_ROLE_ARNS);
    assert.match(ignored, /:role\/ssm-github-deploy,/);
    assert.match(ignored, /:role\/cdk-hnb659fds-deploy-role-/);
    // The execution role is shared by every stack the bootstrap deploys: not ignored outright,
    // only during this stack's operations (issue 19, point 4).
    assert.doesNotMatch(ignored, /cfn-exec-role/);
    assert.match(JSON.stringify(vars.SSM_CLOUDFORMATION_ROLE_ARNS), /:role\/cdk-hnb659fds-cfn-exec-role-/);
    assert.ok(ignored.includes(JSON.stringify({ 'Fn::GetAtt': [roleOf(rotationId), 'Arn'] })));
  });

  it('encrypts the keyring with its own rotated key that only the keyring roles may use', () => {
    const keyId = logicalIdOf(t, 'AWS::KMS::Key');
    const key = resources[keyId];
    assert.equal(key.Properties.EnableKeyRotation, true);
    assert.equal(key.DeletionPolicy, 'Retain');
    assert.deepEqual(resources[secretId].Properties.KmsKeyId, { 'Fn::GetAtt': [keyId, 'Arn'] });
    const statements = key.Properties.KeyPolicy.Statement as any[];
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    assert.deepEqual(Object.keys(bySid).sort(), ['AccountAdministersNotUses', 'KeyringReaders', 'KeyringWriters', 'SecretCreation']);
    // The account administers the key but cannot use it: no IAM policy elsewhere can grant its use.
    const admin = bySid.AccountAdministersNotUses.Action as string[];
    for (const use of ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:ReEncrypt*', 'kms:*']) {
      assert.ok(!admin.includes(use), use);
    }
    assert.ok(!JSON.stringify(statements).includes('"kms:*"'));
    const principals = (sid: string) => JSON.stringify(bySid[sid].Principal.AWS);
    assert.equal(principals('KeyringReaders'), JSON.stringify([{ 'Fn::GetAtt': [roleOf(cryptoId), 'Arn'] }]));
    assert.equal(principals('KeyringWriters'), JSON.stringify([{ 'Fn::GetAtt': [roleOf(rotationId), 'Arn'] }]));
    assert.match(principals('SecretCreation'), /cfn-exec-role/);
    assert.deepEqual(bySid.KeyringReaders.Action, ['kms:Decrypt']);
    for (const sid of ['KeyringReaders', 'KeyringWriters', 'SecretCreation']) {
      assert.match(JSON.stringify(bySid[sid].Condition), /kms:ViaService.*secretsmanager\./);
    }
    // The integrity function may describe the secret but never use the key.
    assert.ok(!JSON.stringify(statements).includes(roleOf(integrityId)));
  });

  it('declares the keyring policy: only the keyring roles read or write, public policies blocked', () => {
    const policyId = logicalIdOf(t, 'AWS::SecretsManager::ResourcePolicy');
    const props = resources[policyId].Properties;
    assert.deepEqual(props.SecretId, { Ref: secretId });
    assert.equal(props.BlockPublicPolicy, true);
    const statements = props.ResourcePolicy.Statement as any[];
    assert.ok(statements.every((s) => s.Effect === 'Deny' && s.Principal.AWS === '*'));
    const allowed = (action: string) =>
      statements.find((s) => s.Action.includes(action)).Condition.ArnNotEquals['aws:PrincipalArn'];
    const role = (id: string) => ({ 'Fn::GetAtt': [roleOf(id), 'Arn'] });
    assert.deepEqual(allowed('secretsmanager:GetSecretValue'), [role(cryptoId), role(rotationId)]);
    for (const write of ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage']) {
      assert.deepEqual(allowed(write), [role(rotationId)]);
    }
  });

  it('feeds the integrity function from a queue with a DLQ, batching window and partial failures', () => {
    const queueId = logicalIdOf(t, 'AWS::SQS::Queue', (p) => p.RedrivePolicy !== undefined);
    const dlqId = logicalIdOf(t, 'AWS::SQS::Queue', (p) => p.RedrivePolicy === undefined);
    const queue = resources[queueId].Properties;
    assert.deepEqual(queue.RedrivePolicy, { deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 5 });
    assert.ok(queue.VisibilityTimeout >= 6 * resources[integrityId].Properties.Timeout);
    assert.equal(queue.SqsManagedSseEnabled, true);
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [queueId, 'Arn'] },
      FunctionName: { Ref: integrityId },
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: 30,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('alarms on the first configuration error the integrity function counts', () => {
    // The EMF line of ssm_core::integrity::configuration: namespace, metric, the [Stack] set.
    const id = logicalIdOf(t, 'AWS::CloudWatch::Alarm', (p) => p.MetricName === 'ConfigurationError');
    const p = resources[id].Properties;
    assert.equal(p.Namespace, 'ServerlessSSM/Integrity');
    assert.deepEqual(p.Dimensions, [{ Name: 'Stack', Value: resources[integrityId].Properties.Environment.Variables.SSM_STACK_NAME }]);
    assert.equal(p.Statistic, 'Sum');
    assert.equal(p.Period, 300);
    assert.equal(p.EvaluationPeriods, 1);
    assert.equal(p.Threshold, 1);
    assert.equal(p.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.equal(p.TreatMissingData, 'notBreaching');
  });

  it('sweeps for drift on the default schedule; a sweep that keeps failing reaches the DLQ', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [integrityId, 'Arn'] } })],
    });
    const dlqId = logicalIdOf(t, 'AWS::SQS::Queue', (p) => p.RedrivePolicy === undefined);
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: integrityId },
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [dlqId, 'Arn'] } } },
    });
    const send = roleStatements(t, roleOf(integrityId)).filter((s) => asArray<string>(s.Action).includes('sqs:SendMessage'));
    assert.deepEqual(send.map((s) => s.Resource), [{ 'Fn::GetAtt': [dlqId, 'Arn'] }]);
  });

  it('creates no trail by default', () => {
    t.resourceCountIs('AWS::CloudTrail::Trail', 0);
  });

  it("outputs the STS endpoint the integrity Lambda signs for: by default its own region's", () => {
    assert.equal(resources[integrityId].Properties.Environment.Variables.SSM_STS_ENDPOINT, undefined);
    t.hasOutput('IntegrityStsEndpoint', {
      Value: { 'Fn::Join': ['', ['https://sts.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/']] },
      Description: Match.stringLikeRegexp('SSM_STS_ALLOWED_REGIONS'),
    });
  });

  it('outputs the API URL, the secret ARN and the queue URLs', () => {
    const outputs = Object.keys(t.toJSON().Outputs);
    for (const o of ['ApiUrl', 'KeyringSecretArn', 'IntegrityQueueUrl', 'IntegrityDeadLetterQueueUrl']) {
      assert.ok(outputs.includes(o), o);
    }
  });
});

describe('SsmServerless settings', () => {
  const { serverlessTemplate: t } = synth({
    architecture: 'arm64',
    createTrail: 'true',
    rotationDays: '7',
    sweepSchedule: 'rate(15 minutes)',
    logRetentionDays: '90',
    // A broker hosted elsewhere: the only case with an audience setting.
    githubApp: 'false',
    brokerAudience: 'ssm-broker',
    githubApiUrl: 'https://github.example.com/api/v3/',
  });
  it('follow the context', () => {
    for (const fn of Object.values(t.findResources('AWS::Lambda::Function'))) {
      assert.deepEqual(fn.Properties.Architectures, ['arm64']);
    }
    t.hasResourceProperties('AWS::SecretsManager::RotationSchedule', { RotationRules: { AutomaticallyAfterDays: 7 } });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
    for (const lg of Object.values(t.findResources('AWS::Logs::LogGroup'))) assert.equal(lg.Properties.RetentionInDays, 90);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ SSM_BROKER_AUDIENCE: 'ssm-broker', SSM_GITHUB_API_URL: 'https://github.example.com/api/v3' }),
      },
    });
  });
  it('creates a validated trail into an encrypted, private, SSL-only bucket when asked', () => {
    t.hasResourceProperties('AWS::CloudTrail::Trail', { EnableLogFileValidation: true, IsLogging: true });
    t.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: Match.anyValue(),
    });
  });
});

describe('SsmServerless keyringOperatorRoleName', () => {
  const { serverlessTemplate: t } = synth({ keyringOperatorRoleName: 'ssm-keyring-operator' });
  const resources = t.toJSON().Resources as Record<string, any>;
  const operator = /:role\/ssm-keyring-operator"/;

  it('lets the operator role read and write the keyring, and tells the integrity function', () => {
    const policy = resources[logicalIdOf(t, 'AWS::SecretsManager::ResourcePolicy')].Properties.ResourcePolicy;
    for (const statement of policy.Statement) {
      assert.match(JSON.stringify(statement.Condition), operator, statement.Sid);
    }
    const key = resources[logicalIdOf(t, 'AWS::KMS::Key')].Properties.KeyPolicy.Statement as any[];
    assert.match(JSON.stringify(key.find((s) => s.Sid === 'KeyringWriters').Principal), operator);
    const integrity = logicalIdOf(t, 'AWS::Lambda::Function', (p) => String(p.Description).includes('integrity'));
    const vars = resources[integrity].Properties.Environment.Variables;
    assert.match(JSON.stringify(vars.SSM_KEYRING_OPERATOR_ROLE_ARNS), operator);
    assert.doesNotMatch(JSON.stringify(vars.SSM_IGNORED_ROLE_ARNS), /ssm-keyring-operator/);
  });
});

describe('SsmServerless brokerStsEndpoint', () => {
  const { serverlessTemplate: t } = synth({ brokerStsEndpoint: 'https://sts.amazonaws.com' });
  it('is what the integrity Lambda signs for, and what the output says', () => {
    const fn = Object.values(t.findResources('AWS::Lambda::Function')).find((f) =>
      String(f.Properties.Description).includes('integrity'),
    );
    assert.equal(fn?.Properties.Environment.Variables.SSM_STS_ENDPOINT, 'https://sts.amazonaws.com/');
    t.hasOutput('IntegrityStsEndpoint', { Value: 'https://sts.amazonaws.com/' });
  });
});
