/**
 * Settings of the CDK app, read from context (`-c key=value`, `cdk.json` or `CDK_CONTEXT_JSON`).
 *
 * Every setting has a documented default (see `cdk/README.md`), except the repository and the
 * broker URL, which have no sensible default: a wrong repository in a trust policy is a security
 * bug, so synth fails with a clear message instead of guessing.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Aws } from 'aws-cdk-lib';
import type { Node } from 'constructs';
import { type KeySettings, readKeys } from './keys';

export type Architecture = 'x86_64' | 'arm64';

export interface SsmConfig {
  /** GitHub repository owner (context `githubOwner`, else the owner in `$GITHUB_REPOSITORY`). */
  readonly githubOwner: string;
  /** GitHub repository name (context `githubRepo`, else the name in `$GITHUB_REPOSITORY`). */
  readonly githubRepo: string;
  /** Branch whose workflow runs may deploy (context `githubBranch`, default `main`). */
  readonly githubBranch: string;
  /** OIDC issuer of GitHub Actions (context `githubOidcUrl`); GHES: `https://HOST/_services/token`. */
  readonly githubOidcUrl: string;
  /** An existing GitHub OIDC provider to reuse instead of creating one (`existingOidcProviderArn`). */
  readonly existingOidcProviderArn?: string;
  /** GitHub REST API base URL for the integrity Lambda (context `githubApiUrl`). */
  readonly githubApiUrl: string;
  /**
   * Token broker base URL (context `brokerUrl`): required with `githubApp=false`; with the hosted
   * App it defaults to the App stack's exported URL.
   */
  readonly brokerUrl?: string;
  /**
   * Audience of a broker hosted elsewhere (context `brokerAudience`, only with `githubApp=false`;
   * default `brokerUrl`). The hosted App's audience is never a setting: both stacks take it from
   * the App stack (`ssm-broker:ACCOUNT:REGION:<appStackName>`, exported there).
   */
  readonly brokerAudience?: string;
  /**
   * STS endpoint the integrity Lambda signs its broker identity for (context `brokerStsEndpoint`):
   * `https://sts.amazonaws.com/` or `https://sts.REGION.amazonaws.com/`. Unset, it signs for its
   * own region's, which a broker in the same region accepts by default.
   */
  readonly brokerStsEndpoint?: string;
  /** Host the GitHub App (ssm-app) on Lambda in its own stack (context `githubApp`, default true). */
  readonly githubApp: boolean;
  /** The GitHub App's id or client id, known once it is registered (context `githubAppId`). */
  readonly githubAppId?: string;
  /** The broker policy JSON for the hosted App (context `brokerPolicy` or `brokerPolicyFile`). */
  readonly brokerPolicy: string;
  /** Drift sweep schedule, an EventBridge expression (context `sweepSchedule`). */
  readonly sweepSchedule: string;
  /** Days between keyring rotations (context `rotationDays`, 1..1000): the `default` key's, and every key's default. */
  readonly rotationDays: number;
  /**
   * The keys (context `keys`, `{"<name>": {"rotationDays": N}, ...}`): `default` first, always
   * present, then the named keys by name (keys.ts).
   */
  readonly keys: readonly KeySettings[];
  /** Create a CloudTrail trail for this stack (context `createTrail`). */
  readonly createTrail: boolean;
  /** Lambda architecture, matching the cargo-lambda build target (context `architecture`). */
  readonly architecture: Architecture;
  /** Directory holding `<bin>/bootstrap.zip` from `scripts/build-lambdas.sh` (`lambdaAssetDir`). */
  readonly lambdaAssetDir: string;
  /** Keyring cache TTL of the crypto Lambda in seconds (context `keyringTtlSecs`). */
  readonly keyringTtlSecs: number;
  /** Retention of every log group, in days (context `logRetentionDays`). */
  readonly logRetentionDays: number;
  /** Steady-state requests per second of the HTTP API stage (context `apiThrottleRate`). */
  readonly apiThrottleRate: number;
  /** Burst of the HTTP API stage (context `apiThrottleBurst`). */
  readonly apiThrottleBurst: number;
  /** Qualifier of the CDK bootstrap stack (context `bootstrapQualifier`). */
  readonly bootstrapQualifier: string;
  /** Name of the Serverless SSM stack (context `stackName`). */
  readonly serverlessStackName: string;
  /** Name of the OIDC bootstrap stack (context `oidcStackName`). */
  readonly oidcStackName: string;
  /** Name of the GitHub App stack (context `appStackName`). */
  readonly appStackName: string;
  /** Name of the deploy role created by the OIDC stack (context `deployRoleName`). */
  readonly deployRoleName: string;
  /** Name of the pull-request plan role created by the OIDC stack (context `planRoleName`). */
  readonly planRoleName: string;
  /**
   * Name of a role of this account whose keyring value writes (`ssm-keyring retire`, `trim`) are
   * expected and which may read the keyring (context `keyringOperatorRoleName`); unset: operators
   * change the keyring only through `RotateSecret` (README, "Keyring operations").
   */
  readonly keyringOperatorRoleName?: string;
  /**
   * An SNS topic every alarm of every stack notifies, on ALARM and on OK (context
   * `alarmTopicArn`); unset: the alarms only change state. The topic's policy must let
   * CloudWatch publish (`cloudwatch.amazonaws.com`); an encrypted topic's key must let it use it.
   */
  readonly alarmTopicArn?: string;
}

/** Defaults of every setting that has one; documented in `cdk/README.md`. */
export const DEFAULTS = {
  githubBranch: 'main',
  githubOidcUrl: 'https://token.actions.githubusercontent.com',
  githubApiUrl: 'https://api.github.com',
  sweepSchedule: 'rate(1 hour)',
  rotationDays: 30,
  createTrail: false,
  architecture: 'x86_64' as Architecture,
  lambdaAssetDir: '../build/lambda',
  keyringTtlSecs: 300,
  logRetentionDays: 30,
  apiThrottleRate: 50,
  apiThrottleBurst: 100,
  bootstrapQualifier: 'hnb659fds',
  serverlessStackName: 'SsmServerless',
  oidcStackName: 'SsmGitHubOidc',
  appStackName: 'SsmGitHubApp',
  githubApp: true,
  /** No rule of its own: the App stack adds only the integrity role's (`integrityRoleName`). */
  brokerPolicy: '{"rules": []}',
  deployRoleName: 'ssm-github-deploy',
  planRoleName: 'ssm-github-plan',
} as const;

/** A setting that is missing or malformed; the message says which and how to fix it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const GITHUB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})$/;
const BRANCH = /^[A-Za-z0-9._/-]{1,200}$/;
const QUALIFIER = /^[a-z0-9]{1,10}$/;
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
/** The retention periods CloudWatch Logs accepts. */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
/** An App id (digits) or client id (`Iv1.…`, `Iv23…`). */
const APP_ID = /^(\d{1,20}|Iv[\w.]{4,40})$/;
/** The global or a regional STS endpoint (the hosts the broker accepts, `SSM_STS_ALLOWED_REGIONS`). */
const STS_ENDPOINT = /^https:\/\/sts(\.[a-z]{2}(-[a-z]+)+-\d{1,2})?\.amazonaws\.com(\.cn)?\/?$/;
/** An SNS topic ARN (a standard topic: CloudWatch alarms cannot notify FIFO topics). */
const SNS_TOPIC_ARN = /^arn:aws[\w-]*:sns:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}$/;
const SCHEDULE = /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$/;

/** Reads and validates the app's settings from a construct node's context. */
export function readConfig(node: Node, env: NodeJS.ProcessEnv = process.env): SsmConfig {
  const ctx = (key: string): unknown => node.tryGetContext(key);
  const str = (key: string, fallback?: string): string | undefined => {
    const v = ctx(key);
    if (v === undefined || v === null || v === '') return fallback;
    if (typeof v !== 'string') throw new ConfigError(`context '${key}' must be a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = ctx(key);
    if (v === undefined || v === null || v === '') return fallback;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(`context '${key}' must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    }
    return n;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = ctx(key);
    if (v === undefined || v === null || v === '') return fallback;
    if (v === true || v === 'true') return true;
    if (v === false || v === 'false') return false;
    throw new ConfigError(`context '${key}' must be true or false, got ${JSON.stringify(v)}`);
  };
  const matching = (key: string, value: string, re: RegExp): string => {
    if (!re.test(value)) throw new ConfigError(`context '${key}' is not valid: ${JSON.stringify(value)}`);
    return value;
  };
  const url = (key: string, value: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(`context '${key}' must be an absolute https URL, got ${JSON.stringify(value)}`);
    }
    if (parsed.protocol !== 'https:') throw new ConfigError(`context '${key}' must use https, got ${JSON.stringify(value)}`);
    return value.replace(/\/+$/, '');
  };

  const [envOwner, envRepo] = (env.GITHUB_REPOSITORY ?? '').split('/', 2);
  const owner = str('githubOwner', envOwner || undefined);
  const repo = str('githubRepo', envRepo || undefined);
  if (!owner || !repo) {
    throw new ConfigError(
      'the GitHub repository is not set: pass -c githubOwner=OWNER -c githubRepo=REPO ' +
        '(or set GITHUB_REPOSITORY=OWNER/REPO, as GitHub Actions does)',
    );
  }

  const architecture = str('architecture', DEFAULTS.architecture);
  if (architecture !== 'x86_64' && architecture !== 'arm64') {
    throw new ConfigError(`context 'architecture' must be x86_64 or arm64, got ${JSON.stringify(architecture)}`);
  }

  const logRetentionDays = int('logRetentionDays', DEFAULTS.logRetentionDays, 1, 3653);
  if (!RETENTION_DAYS.includes(logRetentionDays)) {
    throw new ConfigError(`context 'logRetentionDays' must be one of ${RETENTION_DAYS.join(', ')}, got ${logRetentionDays}`);
  }

  const brokerUrl = str('brokerUrl');
  const existingProvider = str('existingOidcProviderArn');
  if (existingProvider !== undefined && !/^arn:aws[\w-]*:iam::\d{12}:oidc-provider\/.+$/.test(existingProvider)) {
    throw new ConfigError(`context 'existingOidcProviderArn' is not an OIDC provider ARN: ${JSON.stringify(existingProvider)}`);
  }

  const inlinePolicy = str('brokerPolicy');
  const policyFile = str('brokerPolicyFile');
  if (inlinePolicy !== undefined && policyFile !== undefined) {
    throw new ConfigError("set one of context 'brokerPolicy' and 'brokerPolicyFile', not both");
  }
  let policyJson = inlinePolicy ?? DEFAULTS.brokerPolicy;
  if (policyFile !== undefined) {
    try {
      policyJson = fs.readFileSync(path.resolve(path.resolve(__dirname, '..'), policyFile), 'utf8');
    } catch (err) {
      throw new ConfigError(`context 'brokerPolicyFile': cannot read ${policyFile}: ${(err as Error).message}`);
    }
  }
  const githubAppId = str('githubAppId');
  const brokerStsEndpoint = str('brokerStsEndpoint');
  const operatorRole = str('keyringOperatorRoleName');
  const alarmTopicArn = str('alarmTopicArn');
  const rotationDays = int('rotationDays', DEFAULTS.rotationDays, 1, 1000);

  return {
    githubOwner: matching('githubOwner', owner, GITHUB_NAME),
    githubRepo: matching('githubRepo', repo, GITHUB_NAME),
    githubBranch: matching('githubBranch', str('githubBranch', DEFAULTS.githubBranch)!, BRANCH),
    githubOidcUrl: url('githubOidcUrl', str('githubOidcUrl', DEFAULTS.githubOidcUrl)!),
    existingOidcProviderArn: existingProvider,
    githubApiUrl: url('githubApiUrl', str('githubApiUrl', DEFAULTS.githubApiUrl)!),
    brokerUrl: brokerUrl === undefined ? undefined : url('brokerUrl', brokerUrl),
    brokerAudience: externalBrokerAudience(str('brokerAudience'), brokerUrl, bool('githubApp', DEFAULTS.githubApp)),
    brokerStsEndpoint:
      brokerStsEndpoint === undefined
        ? undefined
        : matching('brokerStsEndpoint', brokerStsEndpoint, STS_ENDPOINT).replace(/\/?$/, '/'),
    githubApp: bool('githubApp', DEFAULTS.githubApp),
    githubAppId: githubAppId === undefined ? undefined : matching('githubAppId', githubAppId, APP_ID),
    brokerPolicy: brokerPolicy(policyJson),
    sweepSchedule: matching('sweepSchedule', str('sweepSchedule', DEFAULTS.sweepSchedule)!, SCHEDULE),
    rotationDays,
    keys: readKeys(ctx('keys'), rotationDays, !['', null, undefined].includes(ctx('rotationDays') as string | null | undefined)),
    createTrail: bool('createTrail', DEFAULTS.createTrail),
    architecture,
    lambdaAssetDir: str('lambdaAssetDir', DEFAULTS.lambdaAssetDir)!,
    keyringTtlSecs: int('keyringTtlSecs', DEFAULTS.keyringTtlSecs, 1, 86_400),
    logRetentionDays,
    apiThrottleRate: int('apiThrottleRate', DEFAULTS.apiThrottleRate, 1, 10_000),
    apiThrottleBurst: int('apiThrottleBurst', DEFAULTS.apiThrottleBurst, 1, 5_000),
    bootstrapQualifier: matching('bootstrapQualifier', str('bootstrapQualifier', DEFAULTS.bootstrapQualifier)!, QUALIFIER),
    serverlessStackName: matching('stackName', str('stackName', DEFAULTS.serverlessStackName)!, STACK_NAME),
    oidcStackName: matching('oidcStackName', str('oidcStackName', DEFAULTS.oidcStackName)!, STACK_NAME),
    appStackName: matching('appStackName', str('appStackName', DEFAULTS.appStackName)!, STACK_NAME),
    deployRoleName: matching('deployRoleName', str('deployRoleName', DEFAULTS.deployRoleName)!, ROLE_NAME),
    planRoleName: matching('planRoleName', str('planRoleName', DEFAULTS.planRoleName)!, ROLE_NAME),
    keyringOperatorRoleName:
      operatorRole === undefined ? undefined : matching('keyringOperatorRoleName', operatorRole, ROLE_NAME),
    alarmTopicArn: alarmTopicArn === undefined ? undefined : matching('alarmTopicArn', alarmTopicArn, SNS_TOPIC_ARN),
  };
}

/**
 * The audience of a broker hosted elsewhere. With the hosted App (`githubApp`) there is none to
 * set: a setting one synth sees and another does not (an admin's `-c`, CI's arguments) would give
 * the App and the integrity Lambda two audiences, and every dispatch would be refused.
 */
function externalBrokerAudience(audience: string | undefined, brokerUrl: string | undefined, githubApp: boolean): string | undefined {
  if (githubApp) {
    if (audience !== undefined) {
      throw new ConfigError(
        "context 'brokerAudience' applies only to a broker hosted elsewhere (githubApp=false): the hosted App's " +
          'audience is always ssm-broker:ACCOUNT:REGION:<appStackName>, which both stacks take from the App stack',
      );
    }
    return undefined;
  }
  return audience ?? brokerUrl?.replace(/\/+$/, '');
}

/**
 * The broker policy, checked for the shape ssm-app accepts (`{"rules": [{principal, repositories,
 * permissions}]}`, role or user ARNs, never an assumed-role session) and compacted, since it travels in
 * the function's environment.
 */
export function brokerPolicy(json: string): string {
  const bad = (why: string) => new ConfigError(`the broker policy is not valid: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw bad((err as Error).message);
  }
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(parsed) || !Array.isArray(parsed.rules) || Object.keys(parsed).length !== 1) throw bad('expected {"rules": [...]}');
  parsed.rules.forEach((rule: unknown, i: number) => {
    if (!obj(rule)) throw bad(`rule ${i} is not an object`);
    const keys = Object.keys(rule).sort().join(',');
    if (keys !== 'permissions,principal,repositories') throw bad(`rule ${i} must have exactly principal, repositories, permissions`);
    if (typeof rule.principal === 'string' && /^arn:aws[\w-]*:sts::\d{12}:assumed-role\//.test(rule.principal)) {
      // Whoever assumes a role picks the session name: it names no one, so a rule may not rest on it.
      throw bad(`rule ${i}: principal names an assumed-role session, which whoever assumes the role chooses; name the role (arn:aws:iam::ACCOUNT:role/NAME)`);
    }
    if (typeof rule.principal !== 'string' || !/^arn:aws[\w-]*:iam::\d{12}:(role|user)\/.+$/.test(rule.principal)) {
      throw bad(`rule ${i}: principal must be an IAM role or user ARN`);
    }
    if (!Array.isArray(rule.repositories) || !rule.repositories.every((r) => typeof r === 'string' && /^[\w.-]+\/([\w.-]+|\*)$/.test(r))) {
      throw bad(`rule ${i}: repositories must be "owner/name" or "owner/*"`);
    }
    if (!obj(rule.permissions) || !Object.values(rule.permissions).every((v) => ['read', 'write', 'admin'].includes(v as string))) {
      throw bad(`rule ${i}: permissions map names to read, write or admin`);
    }
  });
  return JSON.stringify(parsed);
}

/** The OIDC issuer as IAM condition keys spell it: the URL without `https://`. */
export function oidcIssuerHost(oidcUrl: string): string {
  return oidcUrl.replace(/^https:\/\//, '');
}

/**
 * The name of the integrity function's role, derived from the Serverless stack's name: the App
 * stack's broker policy names it from the same setting, so neither stack needs the other's
 * outputs and a first install deploys each once. IAM role names are unique in the account across
 * regions, so the region is part of it; a stack name over 32 characters is shortened with a hash
 * of the whole, keeping the name within IAM's 64.
 */
export function integrityRoleName(serverlessStackName: string): string {
  const base =
    serverlessStackName.length <= 32
      ? serverlessStackName
      : `${serverlessStackName.slice(0, 23)}-${createHash('sha256').update(serverlessStackName).digest('hex').slice(0, 8)}`;
  return `${base}-integrity-${Aws.REGION}`;
}
