/** Shared test setup: fixture Lambda zips (no Rust build needed) and a synthesized app. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp, type SsmApp } from '../lib/app';
import type { Architecture } from '../lib/config';
import { type LambdaBin, LAYER_EXECUTABLE, type LambdaLayer } from '../lib/lambda-assets';

export const BINS: LambdaBin[] = ['ssm-crypto', 'ssm-rotation', 'ssm-integrity', 'ssm-app'];
export const LAYERS: LambdaLayer[] = ['lambda-adapter'];

/**
 * The smallest valid zip archive: an end-of-central-directory record and no entries, with the
 * binary's name as the archive comment so each fixture (like each real zip) is a distinct asset.
 */
export function emptyZip(comment: string): Buffer {
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Buffer.byteLength(comment), 20);
  return Buffer.concat([eocd, Buffer.from(comment)]);
}

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The 64-byte header of a 64-bit little-endian Linux executable for `arch` (and nothing after it). */
export function elfHeader(arch: Architecture): Buffer {
  const h = Buffer.alloc(64);
  h.writeUInt32BE(0x7f454c46, 0); // \x7fELF
  h[4] = 2; // ELFCLASS64
  h[5] = 1; // ELFDATA2LSB
  h[6] = 1; // EV_CURRENT
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(arch === 'arm64' ? 183 : 62, 18);
  return h;
}

/**
 * A zip of one stored entry `name` holding `data`, the archive comment making each fixture a
 * distinct asset (as each real zip is).
 */
export function oneEntryZip(name: string, data: Buffer, comment: string): Buffer {
  const nameBytes = Buffer.from(name);
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  central.writeUInt32LE(0, 42);
  const centralAt = local.length + nameBytes.length + data.length;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(central.length + nameBytes.length, 12);
  eocd.writeUInt32LE(centralAt, 16);
  eocd.writeUInt16LE(Buffer.byteLength(comment), 20);
  return Buffer.concat([local, nameBytes, data, central, nameBytes, eocd, Buffer.from(comment)]);
}

/** A fixture `bootstrap.zip` for `bin`: an executable header for `arch`, as build-lambdas.sh writes. */
export function fixtureZip(bin: string, arch: Architecture = 'x86_64'): Buffer {
  return oneEntryZip('bootstrap', elfHeader(arch), bin);
}

/** A temporary asset directory holding `<bin>/bootstrap.zip` and `<layer>/layer.zip`, built for `arch`. */
export function fixtureAssetDir(bins: LambdaBin[] = BINS, layers: LambdaLayer[] = LAYERS, arch: Architecture = 'x86_64'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssm-cdk-assets-'));
  for (const bin of bins) {
    fs.mkdirSync(path.join(dir, bin));
    fs.writeFileSync(path.join(dir, bin, 'bootstrap.zip'), fixtureZip(bin, arch));
  }
  for (const layer of layers) {
    fs.mkdirSync(path.join(dir, layer));
    fs.writeFileSync(path.join(dir, layer, 'layer.zip'), oneEntryZip(LAYER_EXECUTABLE[layer], elfHeader(arch), layer));
  }
  return dir;
}

export const BASE_CONTEXT = {
  githubOwner: 'acme',
  githubRepo: 'serverless-ssm',
  brokerUrl: 'https://broker.example.com',
};

export interface Synthesized extends SsmApp {
  readonly outdir: string;
  readonly oidcTemplate: Template;
  readonly serverlessTemplate: Template;
}

/** Builds and synthesizes the app (running cdk-nag) with fixture zips and the given context. */
export function synth(context: Record<string, unknown> = {}): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssm-cdk-out-'));
  const built = buildApp({
    outdir,
    env: {},
    context: {
      ...BASE_CONTEXT,
      lambdaAssetDir: fixtureAssetDir(BINS, LAYERS, (context.architecture as Architecture | undefined) ?? 'x86_64'),
      ...context,
    },
  });
  built.app.synth();
  return {
    ...built,
    outdir,
    oidcTemplate: Template.fromStack(built.oidc),
    serverlessTemplate: Template.fromStack(built.serverless),
  };
}

type Json = Record<string, any>;

/** Every IAM policy statement of a template: inline role policies and AWS::IAM::Policy documents. */
export function policyStatements(template: Template): Array<{ logicalId: string; statement: Json }> {
  const out: Array<{ logicalId: string; statement: Json }> = [];
  for (const [logicalId, res] of Object.entries(template.toJSON().Resources as Record<string, Json>)) {
    const docs: Json[] = [];
    if (res.Type === 'AWS::IAM::Policy') docs.push(res.Properties.PolicyDocument);
    if (res.Type === 'AWS::IAM::Role') for (const p of res.Properties.Policies ?? []) docs.push(p.PolicyDocument);
    for (const doc of docs) for (const statement of doc.Statement) out.push({ logicalId, statement });
  }
  return out;
}

export const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The statements of the policies attached to a role (by the role's logical id). */
export function roleStatements(template: Template, roleLogicalId: string): Json[] {
  const resources = template.toJSON().Resources as Record<string, Json>;
  const out: Json[] = [];
  for (const p of resources[roleLogicalId].Properties.Policies ?? []) out.push(...p.PolicyDocument.Statement);
  for (const res of Object.values(resources)) {
    if (res.Type !== 'AWS::IAM::Policy') continue;
    if (asArray(res.Properties.Roles).some((r: Json) => r.Ref === roleLogicalId)) out.push(...res.Properties.PolicyDocument.Statement);
  }
  return out;
}

/** The logical id of the single resource of a type whose properties match a predicate. */
export function logicalIdOf(template: Template, type: string, pred: (props: Json) => boolean = () => true): string {
  const ids = Object.entries(template.toJSON().Resources as Record<string, Json>)
    .filter(([, r]) => r.Type === type && pred(r.Properties ?? {}))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type}, found ${ids.length}: ${ids.join(', ')}`);
  return ids[0];
}

/**
 * The App's `SSM_BROKER_POLICY` (a string, or an `Fn::Join` naming pseudo parameters) parsed, each
 * `{"Ref": "AWS::AccountId"}` spelt `${AWS::AccountId}`.
 */
export function brokerPolicyOf(value: unknown): { rules: Json[] } {
  const join = (value as Json)?.['Fn::Join'] as [string, unknown[]] | undefined;
  const text = join ? join[1].map((p) => (typeof p === 'string' ? p : `\${${(p as Json).Ref}}`)).join(join[0]) : (value as string);
  return JSON.parse(text);
}

/** The rule the App stack adds for the default SsmServerless's integrity role on `repository`. */
export function integrityRule(repository: string): Json {
  return {
    principal: 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/SsmServerless-integrity-${AWS::Region}',
    repositories: [repository],
    permissions: { contents: 'write' },
  };
}
