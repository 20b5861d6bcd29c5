/**
 * Lambda code comes from the zips `scripts/build-lambdas.sh` writes (cargo lambda build, each binary
 * zipped byte-reproducibly to `<dir>/<bin>/bootstrap.zip`). A missing zip fails synth with the
 * command that builds it, rather than synthesizing a template whose code cannot be published.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** The Lambda binaries this app deploys. */
export type LambdaBin = 'ssm-crypto' | 'ssm-rotation' | 'ssm-integrity' | 'ssm-app';

export class MissingLambdaZipError extends Error {
  override readonly name = 'MissingLambdaZipError';
}

/** Absolute path of a binary's zip under the asset directory (resolved from the cdk/ directory). */
export function lambdaZipPath(assetDir: string, bin: LambdaBin, baseDir: string = path.resolve(__dirname, '..')): string {
  return path.resolve(baseDir, assetDir, bin, 'bootstrap.zip');
}

/** The zip of one binary as Lambda code; throws when it has not been built. */
export function lambdaCode(assetDir: string, bin: LambdaBin): lambda.Code {
  const zip = lambdaZipPath(assetDir, bin);
  if (!fs.existsSync(zip) || !fs.statSync(zip).isFile()) {
    throw new MissingLambdaZipError(
      `Lambda package for ${bin} not found: ${zip}\n` +
        `Build the zips first with: bash scripts/build-lambdas.sh\n` +
        `(or point -c lambdaAssetDir=DIR at a directory holding <bin>/bootstrap.zip)`,
    );
  }
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
export function lambdaCodeWithSha256(assetDir: string, bin: LambdaBin): { code: lambda.Code; sha256: string } {
  const code = lambdaCode(assetDir, bin);
  // A zip file asset is published as is, so its bytes are the code Lambda hashes.
  return { code, sha256: fileSha256(lambdaZipPath(assetDir, bin)) };
}

/** The layers this app deploys, built into `<dir>/<name>/layer.zip`. */
export type LambdaLayer = 'lambda-adapter';

/** Absolute path of a layer's zip under the asset directory (resolved from the cdk/ directory). */
export function layerZipPath(assetDir: string, layer: LambdaLayer, baseDir: string = path.resolve(__dirname, '..')): string {
  return path.resolve(baseDir, assetDir, layer, 'layer.zip');
}

/** A layer's zip as Lambda code; throws when it has not been built. */
export function layerCode(assetDir: string, layer: LambdaLayer): lambda.Code {
  const zip = layerZipPath(assetDir, layer);
  if (!fs.existsSync(zip) || !fs.statSync(zip).isFile()) {
    throw new MissingLambdaZipError(
      `Lambda layer ${layer} not found: ${zip}\n` +
        `Build it first with: bash scripts/build-app-lambda.sh (bash scripts/build-lambdas.sh runs it)`,
    );
  }
  return lambda.Code.fromAsset(zip);
}
