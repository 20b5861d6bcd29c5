import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../lib/config';
import {
  checkEnvironmentSize,
  checkRouteQuota,
  DEFAULT_KEY_ENVIRONMENT_BYTES,
  HTTP_API_ROUTE_QUOTA,
  KEY_NAME,
  type KeySettings,
  readKeys,
} from '../lib/keys';
import { API_ROUTES } from '../lib/serverless-stack';
import { asArray, logicalIdOf, roleStatements, synth } from './helpers';

const FIXTURE = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures', 'default-keyring-logical-ids.json'), 'utf8'),
) as Record<string, string>;
const KEYRING_TYPES = [
  'AWS::SecretsManager::Secret',
  'AWS::KMS::Key',
  'AWS::SecretsManager::ResourcePolicy',
  'AWS::SecretsManager::RotationSchedule',
];

describe('the keys setting', () => {
  it('is the default key alone when unset, with the rotationDays setting', () => {
    assert.deepEqual(readKeys(undefined, 30, false), [{ name: 'default', rotationDays: 30 }]);
    assert.deepEqual(readKeys('', 12, true), [{ name: 'default', rotationDays: 12 }]);
  });

  it('lists default first, then the named keys by name, each with its rotation (default: rotationDays)', () => {
    const keys = readKeys({ payments: { rotationDays: 7 }, orders: {} }, 30, false);
    assert.deepEqual(keys, [
      { name: 'default', rotationDays: 30 },
      { name: 'orders', rotationDays: 30 },
      { name: 'payments', rotationDays: 7 },
    ]);
    // `-c keys=<JSON>` gives the same.
    assert.deepEqual(readKeys('{"orders": {}, "payments": {"rotationDays": "7"}}', 30, false), keys);
  });

  it('refuses names outside the contract', () => {
    for (const bad of ['Payments', '1abc', 'a_b', 'abc-', '-abc', 'a.b', 'a b', 'a'.repeat(33), 'ünï']) {
      assert.throws(() => readKeys({ [bad]: {} }, 30, false), ConfigError, bad);
    }
    for (const good of ['a', 'a-1', 'a--b', 'x'.repeat(32), 'payments-eu-2']) {
      assert.ok(KEY_NAME.test(good), good);
      assert.equal(readKeys({ [good]: {} }, 30, false)[1].name, good);
    }
  });

  it('refuses unknown settings, non-objects and rotations out of range', () => {
    assert.throws(() => readKeys({ a: { rotationdays: 3 } }, 30, false), /unknown settings rotationdays/);
    assert.throws(() => readKeys({ a: true }, 30, false), /must be an object/);
    assert.throws(() => readKeys({ a: null }, 30, false), /must be an object/);
    assert.throws(() => readKeys(['a'], 30, false), /must be an object/);
    assert.throws(() => readKeys('{not json', 30, false), /not JSON/);
    for (const days of [0, 1001, 1.5, 'x']) {
      assert.throws(() => readKeys({ a: { rotationDays: days } }, 30, false), /1\.\.1000/);
    }
  });

  it("takes default's rotation from either place, refusing the two when they disagree", () => {
    assert.deepEqual(readKeys({ default: { rotationDays: 7 } }, 30, false), [{ name: 'default', rotationDays: 7 }]);
    assert.deepEqual(readKeys({ default: { rotationDays: 7 } }, 7, true), [{ name: 'default', rotationDays: 7 }]);
    assert.deepEqual(readKeys({ default: {} }, 9, true), [{ name: 'default', rotationDays: 9 }]);
    assert.throws(() => readKeys({ default: { rotationDays: 7 } }, 30, true), /conflicts with the rotationDays setting/);
  });

  const many = (n: number, len = 3): KeySettings[] => [
    { name: 'default', rotationDays: 30 },
    ...Array.from({ length: n - 1 }, (_, i) => ({ name: `k${String(i).padStart(len - 1, '0')}`, rotationDays: 30 })),
  ];

  it("refuses more keys than fit the HTTP API's route quota", () => {
    const max = Math.floor((HTTP_API_ROUTE_QUOTA - API_ROUTES.length) / 7);
    assert.equal(max, 41);
    checkRouteQuota(many(max), API_ROUTES.length);
    assert.throws(() => checkRouteQuota(many(max + 1), API_ROUTES.length), /quota of 300 routes per HTTP API.*at most 41 keys/);
  });

  it("refuses keys whose SSM_KEYRINGS could overflow Lambda's 4 KB environment", () => {
    // The worst case (longest partition and region): 23 keys with 32-character names, 32 with 8.
    checkEnvironmentSize(many(23, 32), DEFAULT_KEY_ENVIRONMENT_BYTES);
    assert.throws(() => checkEnvironmentSize(many(24, 32), DEFAULT_KEY_ENVIRONMENT_BYTES), /over Lambda's 4096-byte limit/);
    checkEnvironmentSize(many(32, 8), DEFAULT_KEY_ENVIRONMENT_BYTES);
    assert.throws(() => checkEnvironmentSize(many(33, 8), DEFAULT_KEY_ENVIRONMENT_BYTES), /4096-byte/);
  });

  it('stops synth with the error, not a template', () => {
    const keys = Object.fromEntries(Array.from({ length: 45 }, (_, i) => [`k${i}`, {}]));
    assert.throws(() => synth({ keys }), ConfigError);
  });
});

/** The default keyring's resources by type: their logical ids, checked against the fixture. */
function defaultKeyringIds(resources: Record<string, any>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, r] of Object.entries(resources)) {
    const named = /^Keyring[a-z][a-z0-9]*(Secret|Key|Policy|Rotation)[0-9A-F]{8}$/.test(id);
    if (KEYRING_TYPES.includes(r.Type) && !named) {
      assert.equal(out[r.Type], undefined, `one default ${r.Type}`);
      out[r.Type] = id;
    }
  }
  return out;
}

const { _comment, ...expectedIds } = FIXTURE;
void _comment;

describe('the default keyring keeps its logical ids (existing ciphertexts keep their secret)', () => {
  for (const [label, context] of [
    ['with default settings', {}],
    ['with named keys declared', { keys: { payments: { rotationDays: 7 }, orders: {}, default: {} } }],
  ] as const) {
    it(label, () => {
      const { serverlessTemplate: t } = synth(context);
      const resources = t.toJSON().Resources as Record<string, any>;
      const ids = defaultKeyringIds(resources);
      assert.deepEqual(ids, expectedIds);
      const secret = ids['AWS::SecretsManager::Secret'];
      assert.deepEqual(resources[secret].Properties.KmsKeyId, { 'Fn::GetAtt': [ids['AWS::KMS::Key'], 'Arn'] });
      assert.deepEqual(resources[ids['AWS::SecretsManager::ResourcePolicy']].Properties.SecretId, { Ref: secret });
      assert.deepEqual(resources[ids['AWS::SecretsManager::RotationSchedule']].Properties.SecretId, { Ref: secret });
      t.hasOutput('KeyringSecretArn', { Value: { Ref: secret } });
      const crypto = logicalIdOf(t, 'AWS::Lambda::Function', (p) => String(p.Description).includes('Crypto API'));
      assert.deepEqual(resources[crypto].Properties.Environment.Variables.SSM_KEY_SECRET_ID, { Ref: secret });
    });
  }
});

describe('SsmServerless with named keys', () => {
  const { serverlessTemplate: t, outdir } = synth({ keys: { payments: { rotationDays: 7 }, orders: {} } });
  const resources = t.toJSON().Resources as Record<string, any>;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const fnId = (what: string) => logicalIdOf(t, 'AWS::Lambda::Function', (p) => String(p.Description).includes(what));
  const roleOf = (id: string) => resources[id].Properties.Role['Fn::GetAtt'][0];
  const cryptoId = fnId('Crypto API');
  const rotationId = fnId('rotation');
  const integrityId = fnId('integrity');
  const secretOf = (name: string) => logicalIdOf(t, 'AWS::SecretsManager::Secret', (p) => String(p.Description).includes(`'${name}'`));
  const defaultSecret = expectedIds['AWS::SecretsManager::Secret'];
  const secrets = { default: defaultSecret, orders: secretOf('orders'), payments: secretOf('payments') };
  const refs = Object.values(secrets).map((id) => ({ Ref: id }));
  const byName = <T>(type: string, name: string): [string, any] => {
    const found = ofType(type).filter(([, r]) => JSON.stringify(r.Properties).includes(`"${secrets[name as keyof typeof secrets]}"`));
    assert.equal(found.length, 1, `${type} of ${name}`);
    return found[0] as [string, T];
  };

  it('gives each key its own secret, created like the default one: generated lineage, no material, retained', () => {
    assert.equal(ofType('AWS::SecretsManager::Secret').length, 3);
    for (const name of ['orders', 'payments']) {
      const s = resources[secrets[name as 'orders']];
      assert.equal(s.Properties.SecretString, undefined);
      assert.deepEqual(s.Properties.GenerateSecretString, resources[defaultSecret].Properties.GenerateSecretString);
      assert.equal(s.DeletionPolicy, 'Retain');
      assert.equal(s.UpdateReplacePolicy, 'Retain');
    }
    assert.ok(!JSON.stringify(t.toJSON()).includes('"keys"'), 'no keyring document anywhere in the template');
  });

  it('gives each key its own rotated, retained KMS key with the default key policy shape', () => {
    const defaultKey = resources[expectedIds['AWS::KMS::Key']];
    for (const name of ['orders', 'payments']) {
      const keyId = resources[secrets[name as 'orders']].Properties.KmsKeyId['Fn::GetAtt'][0];
      assert.notEqual(keyId, expectedIds['AWS::KMS::Key']);
      const key = resources[keyId];
      assert.equal(key.Type, 'AWS::KMS::Key');
      assert.equal(key.Properties.EnableKeyRotation, true);
      assert.equal(key.DeletionPolicy, 'Retain');
      assert.equal(key.UpdateReplacePolicy, 'Retain');
      assert.deepEqual(key.Properties.KeyPolicy, defaultKey.Properties.KeyPolicy);
      assert.match(key.Properties.Description, new RegExp(`'${name}'`));
    }
    assert.equal(ofType('AWS::KMS::Key').length, 3);
  });

  it("declares each key's resource policy: the default one's readers and writers", () => {
    const defaultPolicy = resources[expectedIds['AWS::SecretsManager::ResourcePolicy']].Properties;
    for (const name of ['orders', 'payments']) {
      const [, p] = byName('AWS::SecretsManager::ResourcePolicy', name);
      assert.deepEqual(p.Properties.SecretId, { Ref: secrets[name as 'orders'] });
      assert.equal(p.Properties.BlockPublicPolicy, true);
      assert.deepEqual(p.Properties.ResourcePolicy, defaultPolicy.ResourcePolicy);
    }
  });

  it('rotates each key on its own schedule, immediately on creation, once the invoke permission exists', () => {
    const days = { default: 30, orders: 30, payments: 7 };
    for (const [name, n] of Object.entries(days)) {
      const [, r] = byName('AWS::SecretsManager::RotationSchedule', name);
      assert.deepEqual(r.Properties.RotationRules, { AutomaticallyAfterDays: n });
      assert.equal(r.Properties.RotateImmediatelyOnUpdate, true);
      assert.deepEqual(r.Properties.RotationLambdaARN, { 'Fn::GetAtt': [rotationId, 'Arn'] });
      assert.ok(asArray(r.DependsOn).includes('RotationInvokedBySecretsManager'), name);
    }
  });

  it('tells the crypto function every other keyring as SSM_KEYRINGS=name=<secret ARN>,... and lets it read each', () => {
    const vars = resources[cryptoId].Properties.Environment.Variables;
    assert.deepEqual(vars.SSM_KEY_SECRET_ID, { Ref: defaultSecret });
    assert.deepEqual(vars.SSM_KEYRINGS, {
      'Fn::Join': ['', ['orders=', { Ref: secrets.orders }, ',payments=', { Ref: secrets.payments }]],
    });
    const read = roleStatements(t, roleOf(cryptoId)).filter((s) => s.Sid !== 'WriteOwnLogs');
    assert.deepEqual(read, [{ Sid: 'ReadKeyring', Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: refs }]);
  });

  it('lets the rotation function rotate each keyring, and the integrity function describe (never read) each', () => {
    const rotate = roleStatements(t, roleOf(rotationId)).find((s) => s.Sid === 'RotateKeyring');
    assert.deepEqual(rotate?.Resource, refs);
    const integrity = roleStatements(t, roleOf(integrityId));
    assert.deepEqual(integrity.find((s) => s.Sid === 'ThisStacksKeyringMetadata')?.Resource, refs);
    assert.ok(!integrity.flatMap((s) => asArray<string>(s.Action)).includes('secretsmanager:GetSecretValue'));
  });

  it("declares each key's routes, IAM-authorized, through one integration with one API-scoped permission", () => {
    const routes = ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    const keys = routes.map((r) => r.RouteKey as string).filter((k) => k.includes('/v1/keys/')).sort();
    const expected = ['default', 'orders', 'payments'].flatMap((n) => [
      ...['datakey', 'decrypt', 'encrypt', 'hmac', 'rewrap', 'verify'].map((op) => `POST /v1/keys/${n}/${op}`),
      `GET /v1/keys/${n}`,
    ]);
    assert.deepEqual(keys, expected.sort());
    assert.equal(routes.length, API_ROUTES.length + expected.length);
    for (const r of routes) assert.equal(r.AuthorizationType, 'AWS_IAM', r.RouteKey);
    assert.ok(!routes.some((r) => r.RouteKey.includes('{')), 'no route takes the key name as a parameter');
    const keyTargets = new Set(routes.filter((r) => r.RouteKey.includes('/v1/keys/')).map((r) => JSON.stringify(r.Target)));
    assert.equal(keyTargets.size, 1);
    const invoke = ofType('AWS::Lambda::Permission').filter(([, p]) => p.Properties.Principal === 'apigateway.amazonaws.com');
    // The original routes keep their own permissions; all key routes share one, whatever their number.
    assert.equal(invoke.length, API_ROUTES.length + 1);
  });

  it('outputs the API URL, the execute-api ARN prefix for IAM policies and the keyring secrets', () => {
    t.hasOutput('ApiUrl', {});
    const prefix = JSON.stringify(t.toJSON().Outputs.ApiExecuteArnPrefix.Value);
    assert.match(prefix, /:execute-api:/);
    assert.match(prefix, /\/\$default"/);
    assert.deepEqual(t.toJSON().Outputs.KeyringSecretArns.Value, resources[cryptoId].Properties.Environment.Variables.SSM_KEYRINGS);
  });

  it("gives every keyring secret and KMS key a logical id starting with 'Keyring' (how the deploy Action knows them)", () => {
    for (const type of ['AWS::SecretsManager::Secret', 'AWS::KMS::Key']) {
      for (const [id] of ofType(type)) assert.match(id, /^Keyring/, id);
    }
  });

  it('has no unacknowledged cdk-nag finding', () => {
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
    assert.deepEqual(
      report.pluginReports.flatMap((r: { violations: unknown[] }) => r.violations),
      [],
    );
  });
});
