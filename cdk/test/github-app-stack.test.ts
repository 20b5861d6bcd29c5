import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';
import { APP_PORT, APP_RESERVED_CONCURRENCY, LWA_VERSION } from '../lib/github-app-stack';
import { LambdaArchitectureError, MissingLambdaZipError } from '../lib/lambda-assets';
import { asArray, BASE_CONTEXT, BINS, brokerPolicyOf, elfHeader, fixtureAssetDir, LAYERS, oneEntryZip, integrityRule, logicalIdOf, policyStatements, roleStatements, synth } from './helpers';

const { brokerUrl: _omitted, ...CONTEXT_WITHOUT_BROKER } = BASE_CONTEXT;

const POLICY = {
  rules: [
    {
      principal: 'arn:aws:iam::123456789012:role/SsmServerless-IntegrityRole',
      repositories: ['acme/serverless-ssm'],
      permissions: { contents: 'write' },
    },
  ],
};

describe('SsmGitHubApp', () => {
  // The App stack wired to SsmServerless: no brokerUrl in context.
  const built = synth({ brokerUrl: undefined, githubAppId: '123456', brokerPolicy: JSON.stringify(POLICY) });
  const t = Template.fromStack(built.githubApp!);
  const resources = t.toJSON().Resources as Record<string, any>;
  const fnId = logicalIdOf(t, 'AWS::Lambda::Function');
  const fn = resources[fnId].Properties;
  const vars = fn.Environment.Variables;
  const roleId = fn.Role['Fn::GetAtt'][0];
  const secretIds = Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::SecretsManager::Secret')
    .map(([id]) => id)
    .sort();

  it('holds exactly the App function, its URL, layer, role, logs, secrets and alarms', () => {
    const types = Object.values(resources)
      .map((r) => r.Type)
      .sort();
    assert.deepEqual(types, [
      'AWS::CloudWatch::Alarm',
      'AWS::CloudWatch::Alarm',
      'AWS::CloudWatch::Alarm',
      'AWS::IAM::Policy',
      'AWS::IAM::Role',
      'AWS::Lambda::Function',
      'AWS::Lambda::LayerVersion',
      'AWS::Lambda::Permission',
      'AWS::Lambda::Permission',
      'AWS::Lambda::Url',
      'AWS::Logs::LogGroup',
      'AWS::SecretsManager::ResourcePolicy',
      'AWS::SecretsManager::ResourcePolicy',
      'AWS::SecretsManager::Secret',
      'AWS::SecretsManager::Secret',
    ]);
  });

  it('runs ssm-app as bootstrap on provided.al2023 with the Web Adapter layer', () => {
    assert.equal(fn.Runtime, 'provided.al2023');
    assert.equal(fn.Handler, 'bootstrap');
    assert.deepEqual(fn.Architectures, ['x86_64']);
    assert.equal(fn.MemorySize, 256);
    assert.equal(fn.Timeout, 30);
    assert.deepEqual(fn.LoggingConfig.LogFormat, 'JSON');
    const layerId = logicalIdOf(t, 'AWS::Lambda::LayerVersion');
    assert.deepEqual(fn.Layers, [{ Ref: layerId }]);
    const layer = resources[layerId].Properties;
    assert.ok(layer.Description.includes(LWA_VERSION));
    assert.deepEqual(layer.CompatibleRuntimes, ['provided.al2023']);
    assert.deepEqual(layer.CompatibleArchitectures, ['x86_64']);
    // Code from the two file assets (the function's zip and the layer's), published by the Action.
    assert.ok(fn.Code.S3Key.endsWith('.zip') && layer.Content.S3Key.endsWith('.zip'));
    assert.notEqual(fn.Code.S3Key, layer.Content.S3Key);
  });

  it('points the adapter at the App: same port, readiness on /healthz, loopback only', () => {
    assert.equal(vars.AWS_LWA_PORT, String(APP_PORT));
    assert.equal(vars.AWS_LWA_READINESS_CHECK_PATH, '/healthz');
    assert.equal(vars.SSM_APP_LISTEN, `127.0.0.1:${APP_PORT}`);
    assert.equal(vars.SSM_LOG_FORMAT, 'json');
    assert.equal(vars.GITHUB_APP_ID, '123456');
    assert.equal(vars.GITHUB_API_URL, 'https://api.github.com');
    // The integrity role's rule first (by its derived name), then the setting's.
    assert.deepEqual(brokerPolicyOf(vars.SSM_BROKER_POLICY), { rules: [integrityRule('acme/serverless-ssm'), ...POLICY.rules] });
  });

  it('names the secrets by ARN and puts no secret value in the template', () => {
    assert.deepEqual(vars.GITHUB_APP_PRIVATE_KEY_SECRET_ID, { Ref: secretIds[0] });
    assert.deepEqual(vars.GITHUB_WEBHOOK_SECRET_ID, { Ref: secretIds[1] });
    for (const id of secretIds) {
      const secret = resources[id];
      assert.equal(secret.Properties.SecretString, undefined, id);
      assert.ok(secret.Properties.GenerateSecretString, `${id}: a random placeholder until GitHub's values are stored`);
      assert.equal(secret.DeletionPolicy, 'Retain', id);
    }
    assert.doesNotMatch(JSON.stringify(t.toJSON()), /PRIVATE KEY|GITHUB_APP_PRIVATE_KEY"|GITHUB_WEBHOOK_SECRETS/);
  });

  it('lets only the App role read the secrets: its policy allows them, each secret denies everyone else', () => {
    const statements = roleStatements(t, roleId);
    const read = statements.find((s) => s.Sid === 'ReadAppSecrets');
    assert.deepEqual(asArray(read?.Action), ['secretsmanager:GetSecretValue']);
    assert.deepEqual(read?.Resource, secretIds.map((id) => ({ Ref: id })));
    const policies = Object.values(resources).filter((r) => r.Type === 'AWS::SecretsManager::ResourcePolicy');
    assert.deepEqual(
      policies.map((p) => p.Properties.SecretId.Ref).sort(),
      secretIds,
    );
    for (const p of policies) {
      assert.deepEqual(p.Properties.ResourcePolicy.Statement, [
        {
          Sid: 'OnlyTheAppReads',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
          Condition: { ArnNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': [roleId, 'Arn'] } } },
        },
      ]);
    }
  });

  it('gives the role logs on its own group and the two secrets, nothing else', () => {
    const statements = roleStatements(t, roleId);
    assert.deepEqual(statements.map((s) => s.Sid).sort(), ['ReadAppSecrets', 'WriteOwnLogs']);
    const logs = statements.find((s) => s.Sid === 'WriteOwnLogs');
    assert.deepEqual(logs?.Resource, { 'Fn::GetAtt': [fn.LoggingConfig.LogGroup.Ref, 'Arn'] });
    assert.equal(resources[roleId].Properties.ManagedPolicyArns, undefined);
    for (const { statement } of policyStatements(t)) {
      assert.ok(!asArray(statement.Resource).includes('*'));
      for (const a of asArray<string>(statement.Action)) assert.ok(!a.includes('*'), a);
    }
  });

  it('keeps logs 30 days and retains them', () => {
    const logGroup = resources[fn.LoggingConfig.LogGroup.Ref];
    assert.equal(logGroup.Properties.RetentionInDays, 30);
    assert.equal(logGroup.DeletionPolicy, 'Retain');
  });

  it('serves an HTTPS Function URL the App authenticates itself (AuthType NONE, buffered)', () => {
    const url = resources[logicalIdOf(t, 'AWS::Lambda::Url')].Properties;
    assert.deepEqual(url, { AuthType: 'NONE', InvokeMode: 'BUFFERED', TargetFunctionArn: { 'Fn::GetAtt': [fnId, 'Arn'] } });
    const perms = Object.values(resources)
      .filter((r) => r.Type === 'AWS::Lambda::Permission')
      .map((r) => r.Properties);
    // Public invocation through the URL only: the second permission requires InvokedViaFunctionUrl.
    assert.deepEqual(perms.map((p) => [p.Action, p.FunctionUrlAuthType ?? null, p.InvokedViaFunctionUrl ?? null]).sort(), [
      ['lambda:InvokeFunction', null, true],
      ['lambda:InvokeFunctionUrl', 'NONE', null],
    ]);
  });

  it('bounds the anonymous URL: reserved concurrency, and no metrics listener', () => {
    assert.equal(APP_RESERVED_CONCURRENCY, 10);
    assert.equal(fn.ReservedConcurrentExecutions, APP_RESERVED_CONCURRENCY);
    // ssm-app serves /metrics only on SSM_METRICS_LISTEN, which the function does not set.
    assert.equal(vars.SSM_METRICS_LISTEN, undefined);
  });

  it('alarms on errors, throttles and 5xx answers of this function', () => {
    const alarms = Object.values(resources)
      .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
      .map((r) => r.Properties);
    assert.deepEqual(alarms.map((a) => a.MetricName).sort(), ['Errors', 'Throttles', 'Url5xxCount']);
    for (const a of alarms) {
      assert.equal(a.Namespace, 'AWS/Lambda');
      assert.deepEqual(a.Dimensions, [{ Name: 'FunctionName', Value: { Ref: fnId } }]);
      assert.equal(a.Statistic, 'Sum');
      assert.equal(a.Threshold, 0);
      assert.equal(a.ComparisonOperator, 'GreaterThanThreshold');
      assert.equal(a.TreatMissingData, 'notBreaching');
    }
  });

  it("feeds SsmServerless: the integrity Lambda's broker URL is this URL's origin, with the same audience", () => {
    const s = built.serverlessTemplate.toJSON();
    const integrity = Object.values(s.Resources as Record<string, any>).find(
      (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.SSM_BROKER_URL,
    );
    const iv = integrity.Properties.Environment.Variables;
    const outputs = t.toJSON().Outputs as Record<string, any>;
    assert.deepEqual(iv.SSM_BROKER_URL, { 'Fn::ImportValue': 'SsmGitHubApp:BrokerUrl' });
    assert.equal(outputs.BrokerUrl.Export.Name, 'SsmGitHubApp:BrokerUrl');
    assert.deepEqual(outputs.BrokerUrl.Value['Fn::Join'][1][0], 'https://');
    assert.deepEqual(iv.SSM_BROKER_AUDIENCE, { 'Fn::ImportValue': 'SsmGitHubApp:BrokerAudience' });
    assert.equal(outputs.BrokerAudience.Export.Name, 'SsmGitHubApp:BrokerAudience');
    assert.deepEqual(outputs.BrokerAudience.Value, vars.SSM_BROKER_AUDIENCE);
    assert.match(JSON.stringify(vars.SSM_BROKER_AUDIENCE), /ssm-broker:.*AWS::AccountId.*AWS::Region.*:SsmGitHubApp/);
    assert.ok(built.serverless.dependencies.includes(built.githubApp!), 'SsmServerless deploys after SsmGitHubApp');
    assert.ok(outputs.WebhookUrl && outputs.PrivateKeySecretArn && outputs.WebhookSecretArn);
  });
});

describe('SsmGitHubApp settings', () => {
  it('leaves SsmServerless on an explicit brokerUrl (another front for the App), with the App stack\'s audience', () => {
    const built = synth();
    const env = (tmpl: Template) =>
      Object.values(tmpl.toJSON().Resources as Record<string, any>).filter((r) => r.Type === 'AWS::Lambda::Function').map((r) => r.Properties.Environment?.Variables ?? {});
    const integrity = env(built.serverlessTemplate).find((v) => v.SSM_BROKER_URL);
    assert.equal(integrity.SSM_BROKER_URL, 'https://broker.example.com');
    assert.deepEqual(integrity.SSM_BROKER_AUDIENCE, { 'Fn::ImportValue': 'SsmGitHubApp:BrokerAudience' });
    assert.match(JSON.stringify(env(Template.fromStack(built.githubApp!))[0].SSM_BROKER_AUDIENCE), /ssm-broker:.*:SsmGitHubApp/);
    // No App id yet (before registration) and the default policy: the integrity role's rule only.
    const app = env(Template.fromStack(built.githubApp!))[0];
    assert.equal(app.GITHUB_APP_ID, undefined);
    assert.deepEqual(brokerPolicyOf(app.SSM_BROKER_POLICY), { rules: [integrityRule('acme/serverless-ssm')] });
  });

  it('is left out with githubApp=false', () => {
    const built = synth({ githubApp: 'false' });
    assert.equal(built.githubApp, undefined);
    assert.deepEqual(built.app.node.children.map((c) => c.node.id).filter((id) => id.startsWith('Ssm')).sort(), ['SsmGitHubOidc', 'SsmServerless']);
  });

  it('reads the policy from a file relative to cdk/', () => {
    const dir = fs.mkdtempSync(path.join(fixtureAssetDir(), 'policy-'));
    const file = path.join(dir, 'policy.json');
    fs.writeFileSync(file, JSON.stringify(POLICY, null, 2));
    const built = synth({ brokerPolicyFile: path.relative(path.resolve(__dirname, '..'), file) });
    const vars = Object.values(Template.fromStack(built.githubApp!).toJSON().Resources as Record<string, any>).find(
      (r) => r.Type === 'AWS::Lambda::Function',
    ).Properties.Environment.Variables;
    assert.deepEqual(brokerPolicyOf(vars.SSM_BROKER_POLICY).rules.slice(1), POLICY.rules);
  });

  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ brokerPolicy: '{"rules": [{"principal": "integrity", "repositories": ["a/b"], "permissions": {}}]}' }, /principal/],
    [{ brokerPolicy: '{"rules": [{"principal": "arn:aws:iam::123456789012:role/x", "repositories": ["a"], "permissions": {}}]}' }, /repositories/],
    [{ brokerPolicy: '{"rules": [{"principal": "arn:aws:iam::123456789012:role/x", "repositories": ["a/b"], "permissions": {"contents": "all"}}]}' }, /permissions/],
    [{ brokerPolicy: '{"rules": [{"principal": "arn:aws:sts::123456789012:assumed-role/ci/alice", "repositories": ["a/b"], "permissions": {}}]}' }, /assumed-role session/],
    [{ brokerPolicy: '{"rules": [{"principal": "arn:aws:sts::123456789012:role/ci", "repositories": ["a/b"], "permissions": {}}]}' }, /IAM role or user/],
    [{ brokerPolicy: '{"rules": [], "extra": 1}' }, /expected/],
    [{ brokerPolicy: 'not json' }, /not valid/],
    [{ brokerPolicy: '{"rules": []}', brokerPolicyFile: 'p.json' }, /not both/],
    [{ brokerPolicyFile: 'does-not-exist.json' }, /cannot read/],
    [{ githubAppId: 'app 1' }, /githubAppId/],
    [{ githubApp: 'maybe' }, /true or false/],
  ];
  for (const [context, message] of bad) {
    it(`rejects ${JSON.stringify(context)}`, () => {
      assert.throws(
        () => buildApp({ env: {}, context: { ...BASE_CONTEXT, lambdaAssetDir: fixtureAssetDir(), ...context } }),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  it('names the missing layer zip and the script that builds it', () => {
    const dir = fixtureAssetDir(BINS, []);
    assert.throws(
      () => buildApp({ env: {}, context: { ...CONTEXT_WITHOUT_BROKER, lambdaAssetDir: dir } }),
      (err: unknown) =>
        err instanceof MissingLambdaZipError &&
        err.message.includes(path.join(dir, 'lambda-adapter', 'layer.zip')) &&
        err.message.includes('bash scripts/build-app-lambda.sh'),
    );
  });

  it('runs every function and the adapter layer on arm64 when the setting says so', () => {
    const arm = synth({ brokerUrl: undefined, architecture: 'arm64' });
    const app = Template.fromStack(arm.githubApp!);
    const layer = Object.values(app.findResources('AWS::Lambda::LayerVersion'))[0].Properties;
    assert.deepEqual(layer.CompatibleArchitectures, ['arm64']);
    const functions = [
      ...Object.values(app.findResources('AWS::Lambda::Function')),
      ...Object.values(arm.serverlessTemplate.findResources('AWS::Lambda::Function')),
    ];
    assert.ok(functions.length >= 4);
    for (const fn of functions) assert.deepEqual(fn.Properties.Architectures, ['arm64']);
  });

  it("refuses zips whose executables are not for the setting's architecture, naming the build command", () => {
    // x86_64 builds with architecture=arm64: every function would fail only at its first init.
    const x86 = fixtureAssetDir();
    assert.throws(
      () => buildApp({ env: {}, context: { ...CONTEXT_WITHOUT_BROKER, lambdaAssetDir: x86, architecture: 'arm64' } }),
      (err: unknown) =>
        err instanceof LambdaArchitectureError &&
        /(bootstrap|extensions\/lambda-adapter) is built for x86_64, but the setting 'architecture' is arm64/.test(err.message) &&
        err.message.includes('ARCH=arm64 bash scripts/build-lambdas.sh'),
    );
    // Functions right, the layer built for the other architecture: the layer is checked too.
    const mixed = fixtureAssetDir(BINS, [], 'arm64');
    fs.mkdirSync(path.join(mixed, 'lambda-adapter'));
    fs.writeFileSync(path.join(mixed, 'lambda-adapter', 'layer.zip'), oneEntryZip('extensions/lambda-adapter', elfHeader('x86_64'), 'layer'));
    assert.throws(
      () => buildApp({ env: {}, context: { ...CONTEXT_WITHOUT_BROKER, lambdaAssetDir: mixed, architecture: 'arm64' } }),
      (err: unknown) => err instanceof LambdaArchitectureError && /extensions\/lambda-adapter is built for x86_64/.test(err.message),
    );
    // Not an executable at all, or no bootstrap in the zip.
    for (const [name, data] of [
      ['bootstrap', Buffer.from('#!/bin/sh\necho hi\n')],
      ['main', elfHeader('x86_64')],
    ] as const) {
      const dir = fixtureAssetDir(BINS, LAYERS);
      fs.writeFileSync(path.join(dir, 'ssm-crypto', 'bootstrap.zip'), oneEntryZip(name, data, 'bad'));
      assert.throws(
        () => buildApp({ env: {}, context: { ...CONTEXT_WITHOUT_BROKER, lambdaAssetDir: dir } }),
        (err: unknown) => err instanceof LambdaArchitectureError && err.message.includes(path.join(dir, 'ssm-crypto', 'bootstrap.zip')),
      );
    }
  });

  it('pins the same Web Adapter version as scripts/build-app-lambda.sh', () => {
    const script = fs.readFileSync(path.resolve(__dirname, '..', '..', 'scripts', 'build-app-lambda.sh'), 'utf8');
    assert.equal(script.match(/^LWA_VERSION=(\S+)$/m)?.[1], LWA_VERSION);
  });
});
