/**
 * One broker audience (issue 18, the audience trap): the App stack an administrator deploys with the
 * documented settings, and the SsmServerless that deploy.yml synthesizes with its exact arguments,
 * bind the same audience and URL, whatever broker settings either synth saw.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';
import { fixtureAssetDir } from './helpers';

type Json = Record<string, any>;

const REPOSITORY = 'acme/serverless-ssm';
/** The repository variables deploy.yml may read, with the value the docs tell a user to set. */
const DOCUMENTED_VARIABLES: Record<string, string> = {
  // The natural value of the old SSM_BROKER_URL: the App stack's BrokerUrl output.
  SSM_BROKER_URL: 'https://abcdefghijklmnopqrstuvwxyz234567.lambda-url.eu-west-1.on.aws',
};

/** Splits a shell command line (single and double quotes, `$VAR` and `${VAR}` expanded). */
function shellWords(line: string, vars: Record<string, string>): string[] {
  const expand = (s: string) =>
    s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => {
      if (!(name in vars)) throw new Error(`deploy.yml's synth reads $${name}: give the test its documented value`);
      return vars[name];
    });
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) words.push(m[1] ?? expand(m[2] ?? m[3]));
  return words;
}

/** The context every `scripts/synth.sh` call of deploy.yml passes (all calls must agree). */
function deployYmlContext(): Record<string, string> {
  const file = path.resolve(__dirname, '..', '..', '.github', 'workflows', 'deploy.yml');
  const calls = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('scripts/synth.sh'))
    .map((l) => l.slice(l.indexOf('scripts/synth.sh') + 'scripts/synth.sh'.length));
  assert.ok(calls.length >= 2, 'deploy.yml synthesizes in its plan and deploy jobs');
  const contexts = calls.map((call) => {
    const words = shellWords(call, DOCUMENTED_VARIABLES);
    const ctx: Record<string, string> = {};
    for (let i = 0; i < words.length; i++) {
      assert.ok(words[i] === '-c' || words[i] === '--context', `unexpected synth argument ${words[i]}`);
      const [k, ...v] = words[++i].split('=');
      ctx[k] = v.join('=');
    }
    return ctx;
  });
  for (const c of contexts) assert.deepEqual(c, contexts[0], 'every synth of deploy.yml passes the same settings');
  return contexts[0];
}

function synthApp(context: Record<string, unknown>) {
  const built = buildApp({
    env: { GITHUB_REPOSITORY: REPOSITORY },
    // Empty values are unset settings, as synth.sh's `-c key=` is.
    context: { lambdaAssetDir: fixtureAssetDir(), ...context },
  });
  built.app.synth();
  return built;
}

const fnEnv = (t: Template, pred: (vars: Json) => boolean): Json => {
  const fns = Object.values(t.toJSON().Resources as Record<string, Json>)
    .filter((r) => r.Type === 'AWS::Lambda::Function')
    .map((r) => r.Properties.Environment?.Variables ?? {})
    .filter(pred);
  assert.equal(fns.length, 1);
  return fns[0];
};

/** A value of the consumer's template, with an `Fn::ImportValue` replaced by the producer's export. */
function resolveImport(value: unknown, producer: Template): unknown {
  const name = (value as Json)?.['Fn::ImportValue'];
  if (name === undefined) return value;
  const outputs = Object.values((producer.toJSON().Outputs ?? {}) as Record<string, Json>).filter((o) => o.Export?.Name === name);
  assert.equal(outputs.length, 1, `the App stack exports ${name}`);
  return outputs[0].Value;
}

describe('one broker audience', () => {
  const ci = synthApp(deployYmlContext());
  const integrity = fnEnv(Template.fromStack(ci.serverless), (v) => v.SSM_BROKER_AUDIENCE !== undefined);

  // The App stack as an administrator deploys it, with the settings the docs name at each step.
  const adminSynths: Record<string, Record<string, string>> = {
    'first deploy': {},
    'after registration': { githubAppId: '123456' },
    'with its own URL as brokerUrl': { githubAppId: '123456', brokerUrl: DOCUMENTED_VARIABLES.SSM_BROKER_URL },
  };
  for (const [step, context] of Object.entries(adminSynths)) {
    it(`binds the audience and URL of the App stack deployed ${step}`, () => {
      const admin = Template.fromStack(synthApp(context).githubApp!);
      const app = fnEnv(admin, (v) => v.SSM_BROKER_AUDIENCE !== undefined);
      assert.deepEqual(resolveImport(integrity.SSM_BROKER_AUDIENCE, admin), app.SSM_BROKER_AUDIENCE);
      assert.match(JSON.stringify(app.SSM_BROKER_AUDIENCE), /ssm-broker:.*AWS::AccountId.*AWS::Region.*:SsmGitHubApp/);
      assert.deepEqual(resolveImport(integrity.SSM_BROKER_URL, admin), admin.toJSON().Outputs.BrokerUrl.Value);
    });
  }

  it('refuses an audience setting with the hosted App, and keeps one for a broker hosted elsewhere', () => {
    assert.throws(() => synthApp({ brokerAudience: 'https://broker.example.com' }), (e: unknown) => e instanceof ConfigError && /githubApp=false/.test(e.message));
    const external = synthApp({ githubApp: 'false', brokerUrl: 'https://broker.example.com/' });
    const vars = fnEnv(Template.fromStack(external.serverless), (v) => v.SSM_BROKER_AUDIENCE !== undefined);
    assert.equal(vars.SSM_BROKER_URL, 'https://broker.example.com');
    assert.equal(vars.SSM_BROKER_AUDIENCE, 'https://broker.example.com');
    const named = synthApp({ githubApp: 'false', brokerUrl: 'https://broker.example.com', brokerAudience: 'ssm-broker.corp' });
    assert.equal(fnEnv(Template.fromStack(named.serverless), (v) => v.SSM_BROKER_AUDIENCE !== undefined).SSM_BROKER_AUDIENCE, 'ssm-broker.corp');
  });
});

/** A template value with the pseudo parameters of one account and region filled in. */
function resolvePseudo(value: unknown, env: { account: string; region: string }): unknown {
  const v = value as Json;
  if (typeof value === 'string' || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((x) => resolvePseudo(x, env));
  if (v.Ref !== undefined) {
    const pseudo: Record<string, string> = { 'AWS::AccountId': env.account, 'AWS::Region': env.region, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' };
    assert.ok(v.Ref in pseudo, `unexpected Ref ${v.Ref}`);
    return pseudo[v.Ref];
  }
  if (v['Fn::Join'] !== undefined) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolvePseudo(p, env)).join(sep);
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolvePseudo(x, env)]));
}

describe('the broker policy names the integrity role (no third deploy)', () => {
  const env = { account: '123456789012', region: 'eu-west-1' };
  const cases: Record<string, Record<string, string>> = {
    "deploy.yml's arguments": deployYmlContext(),
    'default settings': {},
    'a long stack name and rules of its own': {
      stackName: 'Serverless-SSM-production-payments-eu-west-1-blue',
      brokerPolicy: JSON.stringify({ rules: [{ principal: 'arn:aws:iam::123456789012:role/ci', repositories: ['acme/other'], permissions: { contents: 'read' } }] }),
    },
  };
  for (const [name, context] of Object.entries(cases)) {
    it(`with ${name}`, () => {
      const built = synthApp(context);
      const serverless = Template.fromStack(built.serverless).toJSON().Resources as Record<string, Json>;
      const fnId = Object.keys(serverless).find((id) => serverless[id].Properties?.Environment?.Variables?.SSM_BROKER_AUDIENCE !== undefined)!;
      const roleId = serverless[fnId].Properties.Role['Fn::GetAtt'][0];
      const roleName = resolvePseudo(serverless[roleId].Properties.RoleName, env) as string;
      assert.equal(typeof roleName, 'string', 'the integrity role has a fixed name');
      assert.ok(roleName.length <= 64, `${roleName} is longer than IAM allows`);
      assert.match(roleName, /^[\w+=,.@-]+$/);

      const app = fnEnv(Template.fromStack(built.githubApp!), (v) => v.SSM_BROKER_POLICY !== undefined);
      const policy = JSON.parse(resolvePseudo(app.SSM_BROKER_POLICY, env) as string);
      assert.deepEqual(policy.rules[0], {
        principal: `arn:aws:iam::${env.account}:role/${roleName}`,
        repositories: [REPOSITORY],
        permissions: { contents: 'write' },
      });
      const own = context.brokerPolicy ? JSON.parse(context.brokerPolicy).rules : [];
      assert.deepEqual(policy.rules.slice(1), own);
    });
  }

  it('gives two Serverless stacks of one account different integrity role names', () => {
    const name = (stackName: string) =>
      Object.values(Template.fromStack(synthApp({ stackName, appStackName: `${stackName}App` }).serverless).toJSON().Resources as Record<string, Json>)
        .map((r) => r.Properties?.RoleName)
        .filter((n) => n !== undefined)
        .map((n) => JSON.stringify(n));
    const long = 'Serverless-SSM-production-payments-eu-west-1-';
    assert.notDeepEqual(name(`${long}blue`), name(`${long}green`));
  });
});
