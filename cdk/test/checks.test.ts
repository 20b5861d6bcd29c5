import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';
import { MissingLambdaZipError } from '../lib/lambda-assets';
import { asArray, BASE_CONTEXT, fixtureAssetDir, policyStatements, synth } from './helpers';

type Violation = { ruleName: string; severity: string; violatingConstructs: Array<{ constructPath: string }> };
type Report = { pluginReports: Array<{ pluginName: string; violations: Violation[] }> };

const report = (outdir: string): Report => JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));

/** Every acknowledgement recorded in the tree, with the construct it was made on. */
function acknowledgements(root: IConstruct): Array<{ path: string; id: string; reason: string }> {
  const out: Array<{ path: string; id: string; reason: string }> = [];
  for (const c of root.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
        out.push({ path: c.node.path, id: id.replace(/^\w+::/, ''), reason });
      }
    }
  }
  return out;
}

for (const createTrail of ['false', 'true']) {
  describe(`cdk-nag AwsSolutions (createTrail=${createTrail})`, () => {
    const { app, outdir } = synth({ createTrail });

    it('has no unacknowledged finding, error or warning', () => {
      const findings = report(outdir).pluginReports.flatMap((r) => r.violations);
      assert.deepEqual(findings, []);
    });

    it('acknowledges each finding on its own construct with a real reason, and nothing that is not found', () => {
      const acks = acknowledgements(app);
      assert.ok(acks.length > 0);
      for (const a of acks) assert.ok(a.reason.length >= 80, `reason too thin for ${a.id} at ${a.path}`);

      // The same app with acknowledgements disabled: its findings must be exactly the acknowledged ones.
      const original = Validations.prototype.acknowledge;
      const originalError = console.error;
      let raw: Violation[];
      let printed = '';
      const out = fs.mkdtempSync(path.join(path.dirname(outdir), 'ssm-cdk-unacked-'));
      try {
        Validations.prototype.acknowledge = function () {};
        // CDK prints the expected failure report; keep it out of the test log.
        console.error = (...args: unknown[]) => {
          printed += args.join(' ');
        };
        const bare = buildApp({ outdir: out, env: {}, context: { ...BASE_CONTEXT, lambdaAssetDir: fixtureAssetDir(), createTrail } });
        assert.throws(() => bare.app.synth(), /Validation failed/);
        raw = report(out).pluginReports.flatMap((r) => r.violations);
      } finally {
        Validations.prototype.acknowledge = original;
        console.error = originalError;
      }
      assert.match(printed, /AwsSolutions-IAM5/);
      const found = raw.flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} @ ${c.constructPath}`)).sort();
      const acked = acks.map((a) => `${a.id} @ ${a.path}/Resource`).sort();
      assert.deepEqual(found, acked);
    });
  });
}

describe('IAM resources', () => {
  const { oidcTemplate, serverlessTemplate } = synth({ createTrail: 'true' });
  /** Actions AWS authorizes only on "*" (no resource-level permissions). */
  const STAR_ONLY_ACTIONS = new Set(['cloudformation:DescribeStackDriftDetectionStatus', 'cloudwatch:PutMetricData']);

  it('uses "*" only for actions without resource-level permissions', () => {
    let checked = 0;
    for (const t of [oidcTemplate, serverlessTemplate]) {
      for (const { logicalId, statement } of policyStatements(t)) {
        checked += 1;
        assert.equal(statement.Effect, 'Allow');
        assert.equal(statement.NotResource, undefined, logicalId);
        assert.equal(statement.NotAction, undefined, logicalId);
        for (const action of asArray<string>(statement.Action)) assert.ok(!action.includes('*'), `${logicalId}: ${action}`);
        if (asArray(statement.Resource).includes('*')) {
          for (const action of asArray<string>(statement.Action)) {
            assert.ok(STAR_ONLY_ACTIONS.has(action), `${logicalId}: ${action} on "*"`);
          }
          assert.deepEqual(asArray(statement.Resource), ['*'], 'a "*" statement holds nothing else');
        }
      }
    }
    assert.ok(checked > 15);
  });
});

describe('failures at synth', () => {
  it('names the missing Lambda zip and the command that builds it', () => {
    const dir = fixtureAssetDir(['ssm-crypto', 'ssm-rotation', 'ssm-app']);
    assert.throws(
      () => buildApp({ env: {}, context: { ...BASE_CONTEXT, lambdaAssetDir: dir } }),
      (err: unknown) =>
        err instanceof MissingLambdaZipError &&
        err.message.includes(path.join(dir, 'ssm-integrity', 'bootstrap.zip')) &&
        err.message.includes('bash scripts/build-lambdas.sh'),
    );
  });

  it('bin/app.ts exits 2 with that message and no stack trace', () => {
    const dir = fixtureAssetDir(['ssm-crypto', 'ssm-rotation', 'ssm-app']);
    const out = fs.mkdtempSync(path.join(path.dirname(dir), 'ssm-cdk-fail-'));
    const ctx = Object.entries({ ...BASE_CONTEXT, lambdaAssetDir: dir }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts', ...ctx], {
      cwd: path.resolve(__dirname, '..'),
      env: { ...process.env, CDK_OUTDIR: out, GITHUB_REPOSITORY: '' },
      encoding: 'utf8',
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^error: Lambda package for ssm-integrity not found: .*ssm-integrity\/bootstrap\.zip$/m);
    assert.match(run.stderr, /bash scripts\/build-lambdas\.sh/);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
    assert.equal(fs.existsSync(path.join(out, 'manifest.json')), false);
  });

  it('refuses to guess the repository or the broker', () => {
    const lambdaAssetDir = fixtureAssetDir();
    assert.throws(() => buildApp({ env: {}, context: { brokerUrl: 'https://b.example.com', lambdaAssetDir } }), /githubOwner/);
    // Without the hosted App (githubApp=false), a broker must be named.
    assert.throws(() => buildApp({ env: {}, context: { githubOwner: 'a', githubRepo: 'b', githubApp: 'false', lambdaAssetDir } }), /brokerUrl/);
    // GitHub Actions' own variable is enough for the repository.
    const built = buildApp({ env: { GITHUB_REPOSITORY: 'octo/repo' }, context: { brokerUrl: 'https://b.example.com', lambdaAssetDir } });
    assert.ok(built.oidc);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['architecture', 'sparc', /x86_64 or arm64/],
    ['rotationDays', '0', /rotationDays/],
    ['rotationDays', 'soon', /rotationDays/],
    ['logRetentionDays', '31', /logRetentionDays/],
    ['createTrail', 'yes', /true or false/],
    ['sweepSchedule', 'every hour', /sweepSchedule/],
    ['brokerUrl', 'http://broker.example.com', /https/],
    ['githubOwner', 'acme/evil', /githubOwner/],
    ['githubBranch', 'main*', /githubBranch/],
    ['existingOidcProviderArn', 'arn:aws:iam::1:role/x', /OIDC provider ARN/],
    ['brokerStsEndpoint', 'https://sts.evil.example/', /brokerStsEndpoint/],
    ['brokerStsEndpoint', 'https://sts.eu-west-1.amazonaws.com.evil.example/', /brokerStsEndpoint/],
    ['brokerStsEndpoint', 'http://sts.amazonaws.com/', /brokerStsEndpoint/],
  ];
  for (const [key, value, message] of bad) {
    it(`rejects ${key}=${JSON.stringify(value)}`, () => {
      assert.throws(
        () => buildApp({ env: {}, context: { ...BASE_CONTEXT, lambdaAssetDir: fixtureAssetDir(), [key]: value } }),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }
});
