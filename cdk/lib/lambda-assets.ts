/**
 * Lambda code comes from the zips `scripts/build-lambdas.sh` writes (cargo lambda build, each binary
 * zipped byte-reproducibly to `<dir>/<bin>/bootstrap.zip`). A missing zip fails synth with the
 * command that builds it, rather than synthesizing a template whose code cannot be published.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Architecture } from './config';

/** The Lambda binaries this app deploys. */
export type LambdaBin = 'ssm-crypto' | 'ssm-rotation' | 'ssm-integrity' | 'ssm-app';

export class MissingLambdaZipError extends Error {
  override readonly name = 'MissingLambdaZipError';
}

/** A zip whose executable is not for the stack's architecture, or is no Linux executable at all. */
export class LambdaArchitectureError extends Error {
  override readonly name = 'LambdaArchitectureError';
}

/** Lambda's architecture for the `architecture` setting. */
export function lambdaArchitecture(architecture: Architecture): lambda.Architecture {
  return architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
}

/** ELF `e_machine` of each architecture (the ELF and psABI specifications). */
const ELF_MACHINE: Record<Architecture, number> = { x86_64: 62, arm64: 183 };

/**
 * The first bytes of one entry of a zip archive, found through its central directory; undefined
 * when the archive has no such entry. Stored and deflated entries only (what zip writers use).
 */
export function zipEntryHead(zip: Buffer, name: string, bytes = 64): Buffer | undefined {
  // End of central directory: 22 bytes plus a comment of at most 65535, at the end.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new LambdaArchitectureError('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== 0x02014b50) throw new LambdaArchitectureError('corrupt zip central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLen = zip.readUInt16LE(at + 28);
    const extraLen = zip.readUInt16LE(at + 30);
    const commentLen = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLen);
    at += 46 + nameLen + extraLen + commentLen;
    if (entryName !== name) continue;
    if (local + 30 > zip.length || zip.readUInt32LE(local) !== 0x04034b50) throw new LambdaArchitectureError(`corrupt zip entry ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + compressed);
    if (method === 0) return Buffer.from(data.subarray(0, bytes));
    if (method === 8) return zlib.inflateRawSync(data).subarray(0, bytes);
    throw new LambdaArchitectureError(`zip entry ${name} uses compression method ${method}`);
  }
  return undefined;
}

/**
 * Checks that `entry` of the zip is a Linux executable for `architecture`: content, not presence,
 * so an x86_64 build never reaches an arm64 function (it would fail there only at its first init).
 */
export function checkZipArchitecture(zipPath: string, entry: string, architecture: Architecture): void {
  let head: Buffer | undefined;
  try {
    head = zipEntryHead(fs.readFileSync(zipPath), entry);
  } catch (e) {
    throw new LambdaArchitectureError(`${zipPath}: ${(e as Error).message}`);
  }
  if (head === undefined) throw new LambdaArchitectureError(`${zipPath} holds no ${entry}`);
  const isElf = head.length >= 20 && head.readUInt32BE(0) === 0x7f454c46 && head[4] === 2 && head[5] === 1;
  if (!isElf) throw new LambdaArchitectureError(`${zipPath}: ${entry} is not a 64-bit little-endian ELF executable`);
  const machine = head.readUInt16LE(18);
  if (machine === ELF_MACHINE[architecture]) return;
  const built = (Object.keys(ELF_MACHINE) as Architecture[]).find((a) => ELF_MACHINE[a] === machine) ?? `ELF machine ${machine}`;
  throw new LambdaArchitectureError(
    `${zipPath}: ${entry} is built for ${built}, but the setting 'architecture' is ${architecture}\n` +
      `Build the zips for it: ARCH=${architecture} bash scripts/build-lambdas.sh (the scripts read cdk.json's 'architecture' when ARCH is unset)`,
  );
}

/** Absolute path of a binary's zip under the asset directory (resolved from the cdk/ directory). */
export function lambdaZipPath(assetDir: string, bin: LambdaBin, baseDir: string = path.resolve(__dirname, '..')): string {
  return path.resolve(baseDir, assetDir, bin, 'bootstrap.zip');
}

/** The zip of one binary as Lambda code; throws when it has not been built. */
export function lambdaCode(assetDir: string, bin: LambdaBin, architecture: Architecture): lambda.Code {
  const zip = lambdaZipPath(assetDir, bin);
  if (!fs.existsSync(zip) || !fs.statSync(zip).isFile()) {
    throw new MissingLambdaZipError(
      `Lambda package for ${bin} not found: ${zip}\n` +
        `Build the zips first with: bash scripts/build-lambdas.sh\n` +
        `(or point -c lambdaAssetDir=DIR at a directory holding <bin>/bootstrap.zip)`,
    );
  }
  checkZipArchitecture(zip, 'bootstrap', architecture);
  return lambda.Code.fromAsset(zip);
}

/**
 * The function metadata key under which synth records the code's `CodeSha256`
 * (ssm_core::integrity::template): the integrity sweep compares each function's live code with the
 * hash in the deployed template, never with the asset object as it stands in the bucket, which a
 * publishing role could overwrite. Only a deploy changes the deployed template.
 */
export const CODE_SHA256_METADATA = 'ssm:CodeSha256';

/** SHA-256 of a file, base64: how Lambda computes `CodeSha256` of the zip it is given. */
export function fileSha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('base64');
}

/** A binary's zip as Lambda code and the `CodeSha256` Lambda will report for it. */
export function lambdaCodeWithSha256(
  assetDir: string,
  bin: LambdaBin,
  architecture: Architecture,
): { code: lambda.Code; sha256: string } {
  const code = lambdaCode(assetDir, bin, architecture);
  // A zip file asset is published as is, so its bytes are the code Lambda hashes.
  return { code, sha256: fileSha256(lambdaZipPath(assetDir, bin)) };
}

/** The layers this app deploys, built into `<dir>/<name>/layer.zip`. */
export type LambdaLayer = 'lambda-adapter';

/** The executable each layer holds (Lambda starts external extensions from /opt/extensions). */
export const LAYER_EXECUTABLE: Record<LambdaLayer, string> = { 'lambda-adapter': 'extensions/lambda-adapter' };

/** Absolute path of a layer's zip under the asset directory (resolved from the cdk/ directory). */
export function layerZipPath(assetDir: string, layer: LambdaLayer, baseDir: string = path.resolve(__dirname, '..')): string {
  return path.resolve(baseDir, assetDir, layer, 'layer.zip');
}

/** A layer's zip as Lambda code; throws when it has not been built. */
export function layerCode(assetDir: string, layer: LambdaLayer, architecture: Architecture): lambda.Code {
  const zip = layerZipPath(assetDir, layer);
  if (!fs.existsSync(zip) || !fs.statSync(zip).isFile()) {
    throw new MissingLambdaZipError(
      `Lambda layer ${layer} not found: ${zip}\n` +
        `Build it first with: bash scripts/build-app-lambda.sh (bash scripts/build-lambdas.sh runs it)`,
    );
  }
  checkZipArchitecture(zip, LAYER_EXECUTABLE[layer], architecture);
  return lambda.Code.fromAsset(zip);
}
