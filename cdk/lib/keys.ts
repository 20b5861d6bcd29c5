/**
 * Named keys (issue 21): the `keys` setting, its validation, and what each key adds to the stack's
 * HTTP API. Each key is its own keyring secret, KMS key, resource policy and rotation schedule
 * (serverless-stack.ts); `default` is the key behind the original routes and always exists.
 *
 * Logical ids: `default` keeps the ids it always had (`Keyring…`, `KeyringKey`, `KeyringPolicy`,
 * `KeyringRotation`), so an existing deployment keeps its secret; a named key's resources live
 * under the construct `Keyring-<name>` (`Keyring<name>Secret…`, `Keyring<name>Key…`, …). Every
 * keyring secret and KMS key has a logical id starting with `Keyring`: that is how the deploy
 * Action recognizes them (ssm_core::deploy::keyrings).
 */
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { ConfigError } from './config';

/** A key name (CONTRACT-21, `ssm_core::keyname::KeyName`): 1..=32 of `[a-z0-9-]`, a letter first, no `-` last. */
export const KEY_NAME = /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
/** The key behind `/v1/encrypt`, `/wrap`, … (and its own `/v1/keys/default/…` routes). */
export const DEFAULT_KEY = 'default';

/** One declared key. */
export interface KeySettings {
  readonly name: string;
  /** Days between rotations of this key's keyring (default: the `rotationDays` setting). */
  readonly rotationDays: number;
}

/** The operations of `/v1/keys/{name}/…`, all POST. */
export const KEY_OPERATIONS = ['encrypt', 'decrypt', 'rewrap', 'datakey', 'hmac', 'verify'] as const;

/** The routes the HTTP API declares for one key: its operations and `GET /v1/keys/{name}`. */
export function keyRoutes(name: string): Array<{ method: apigwv2.HttpMethod; path: string }> {
  return [
    ...KEY_OPERATIONS.map((op) => ({ method: apigwv2.HttpMethod.POST, path: `/v1/keys/${name}/${op}` })),
    { method: apigwv2.HttpMethod.GET, path: `/v1/keys/${name}` },
  ];
}

/** API Gateway's default quota of routes per HTTP API. */
export const HTTP_API_ROUTE_QUOTA = 300;
/** Lambda's limit on a function's environment: every key and value, in bytes. */
export const LAMBDA_ENVIRONMENT_LIMIT = 4096;

const PER_KEY_SETTINGS = ['rotationDays'];

/**
 * The `keys` setting: an object `{"<name>": {"rotationDays": N}, …}` (in cdk.json, or its JSON text
 * with `-c keys=…`). `default` is always a key, declared or not; its `rotationDays` is the
 * top-level `rotationDays` setting, and declaring both with different values is refused (two places
 * for one setting, one of them silently ignored, is how a deployment ends up rotating on the wrong
 * schedule). Returned with `default` first, then by name (the template does not depend on the order
 * of cdk.json).
 *
 * @param rotationDays the `rotationDays` setting (its default when unset)
 * @param rotationDaysSet whether `rotationDays` was set explicitly
 */
export function readKeys(raw: unknown, rotationDays: number, rotationDaysSet: boolean): KeySettings[] {
  let value = raw;
  if (typeof value === 'string') {
    if (value.trim() === '') value = undefined;
    else {
      try {
        value = JSON.parse(value);
      } catch (err) {
        throw new ConfigError(`context 'keys' is not JSON: ${(err as Error).message}`);
      }
    }
  }
  if (value === undefined || value === null) return [{ name: DEFAULT_KEY, rotationDays }];
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`context 'keys' must be an object {"<name>": {"rotationDays": N}, ...}, got ${JSON.stringify(value)}`);
  }
  const declared = new Map<string, KeySettings>();
  for (const [name, settings] of Object.entries(value as Record<string, unknown>)) {
    if (!KEY_NAME.test(name)) {
      throw new ConfigError(
        `context 'keys': ${JSON.stringify(name)} is not a key name (1 to 32 of a-z, 0-9 and '-', starting with a letter, not ending with '-')`,
      );
    }
    if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
      throw new ConfigError(`context 'keys': the settings of '${name}' must be an object ({} for the defaults), got ${JSON.stringify(settings)}`);
    }
    const s = settings as Record<string, unknown>;
    const unknown = Object.keys(s).filter((k) => !PER_KEY_SETTINGS.includes(k));
    if (unknown.length > 0) {
      throw new ConfigError(`context 'keys': '${name}' has unknown settings ${unknown.join(', ')} (known: ${PER_KEY_SETTINGS.join(', ')})`);
    }
    let days = rotationDays;
    if (s.rotationDays !== undefined) {
      const n = typeof s.rotationDays === 'number' ? s.rotationDays : Number(s.rotationDays);
      if (!Number.isInteger(n) || n < 1 || n > 1000) {
        throw new ConfigError(`context 'keys': '${name}'.rotationDays must be an integer in 1..1000, got ${JSON.stringify(s.rotationDays)}`);
      }
      if (name === DEFAULT_KEY && rotationDaysSet && n !== rotationDays) {
        throw new ConfigError(
          `context 'keys': default.rotationDays (${n}) conflicts with the rotationDays setting (${rotationDays}), ` +
            "which is the default key's; set one of them",
        );
      }
      days = n;
    }
    declared.set(name, { name, rotationDays: days });
  }
  const named = [...declared.values()].filter((k) => k.name !== DEFAULT_KEY).sort((a, b) => (a.name < b.name ? -1 : 1));
  return [declared.get(DEFAULT_KEY) ?? { name: DEFAULT_KEY, rotationDays }, ...named];
}

/**
 * The longest ARN Secrets Manager can give a keyring secret whose logical id is `logicalIdLength`
 * long: CloudFormation names it `<logical id>-<12 random>` and Secrets Manager appends `-<6>`; the
 * partition and region are the longest there are (the template does not know its own).
 */
export function longestSecretArn(logicalIdLength: number): number {
  return 'arn:aws-us-gov:secretsmanager:ap-southeast-3:123456789012:secret:'.length + logicalIdLength + 13 + 7;
}

/** The logical id length of a named key's secret: `Keyring<name without ->Secret` and an 8-character hash. */
export function namedSecretLogicalIdLength(name: string): number {
  return `Keyring${name.replace(/-/g, '')}Secret`.length + 8;
}

/**
 * Worst-case bytes of the crypto function's environment besides `SSM_KEYRINGS`: the default key's
 * secret (logical id `Keyring` and a hash) and the cache TTL.
 */
export const DEFAULT_KEY_ENVIRONMENT_BYTES =
  'SSM_KEY_SECRET_ID'.length + longestSecretArn('Keyring'.length + 8) + 'SSM_KEYRING_TTL_SECS'.length + '86400'.length;

/** Worst-case bytes of `SSM_KEYRINGS=name=<arn>,…` for these keys (the default is not in it). */
export function keyringsVariableBytes(keys: readonly KeySettings[]): number {
  const named = keys.filter((k) => k.name !== DEFAULT_KEY);
  if (named.length === 0) return 0;
  const entries = named.map((k) => k.name.length + 1 + longestSecretArn(namedSecretLogicalIdLength(k.name)));
  return 'SSM_KEYRINGS'.length + entries.reduce((a, b) => a + b, 0) + named.length - 1;
}

/** Refuses more keys than fit API Gateway's quota of routes per HTTP API, besides `legacyRoutes`. */
export function checkRouteQuota(keys: readonly KeySettings[], legacyRoutes: number): void {
  const perKey = keyRoutes(DEFAULT_KEY).length;
  const maxKeys = Math.floor((HTTP_API_ROUTE_QUOTA - legacyRoutes) / perKey);
  if (keys.length > maxKeys) {
    throw new ConfigError(
      `context 'keys': ${keys.length} keys (default included) need ${legacyRoutes + keys.length * perKey} routes, over API Gateway's ` +
        `quota of ${HTTP_API_ROUTE_QUOTA} routes per HTTP API (${legacyRoutes} original routes and ${perKey} per key): ` +
        `declare at most ${maxKeys} keys, or deploy another stack (stackName) for the others`,
    );
  }
}

/**
 * Refuses keys whose `SSM_KEYRINGS` could overflow the crypto function's environment
 * (`otherEnvironmentBytes`: the rest of it) whatever the region and account. This binds before the
 * route quota: 32 keys (default included) with 8-character names, 23 with 32-character ones.
 */
export function checkEnvironmentSize(keys: readonly KeySettings[], otherEnvironmentBytes: number): void {
  const bytes = keyringsVariableBytes(keys) + otherEnvironmentBytes;
  if (bytes > LAMBDA_ENVIRONMENT_LIMIT) {
    throw new ConfigError(
      `context 'keys': ${keys.length} keys make the crypto function's environment up to ${bytes} bytes (SSM_KEYRINGS names each ` +
        `key's secret ARN), over Lambda's ${LAMBDA_ENVIRONMENT_LIMIT}-byte limit: declare fewer keys or shorter names, ` +
        'or deploy another stack (stackName) for the others',
    );
  }
}

/** Refuses more keys than the stack can serve (both checks above). */
export function checkKeyCapacity(keys: readonly KeySettings[], legacyRoutes: number, otherEnvironmentBytes: number): void {
  checkRouteQuota(keys, legacyRoutes);
  checkEnvironmentSize(keys, otherEnvironmentBytes);
}
