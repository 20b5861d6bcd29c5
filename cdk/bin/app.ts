/**
 * Entry point: synthesizes the cloud assembly (into `$CDK_OUTDIR`, `cdk.out` by default) and fails
 * when cdk-nag or CDK reported an error or warning, so an unacknowledged finding never ships.
 */
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';
import { MissingLambdaZipError } from '../lib/lambda-assets';

/** `-c key=value` / `--context key=value` pairs, as the CDK CLI takes them. */
function contextArgs(argv: string[]): Record<string, string> {
  const context: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') continue;
    if ((arg === '-c' || arg === '--context') && i + 1 < argv.length) {
      const pair = argv[++i];
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new ConfigError(`context argument must be key=value, got ${JSON.stringify(pair)}`);
      context[pair.slice(0, eq)] = pair.slice(eq + 1);
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)} (expected -c key=value)`);
    }
  }
  return context;
}

function main(): number {
  let built;
  try {
    built = buildApp({ context: contextArgs(process.argv.slice(2)) });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof MissingLambdaZipError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const assembly = built.app.synth();
  let findings = 0;
  for (const stack of assembly.stacks) {
    for (const msg of stack.messages) {
      if (msg.level === 'error' || msg.level === 'warning') {
        findings += 1;
        console.error(`${msg.level}: ${stack.stackName} ${msg.id}: ${String(msg.entry.data)}`);
      }
    }
  }
  if (findings > 0) {
    console.error(`error: ${findings} unacknowledged finding(s); fix them or acknowledge each with a reason`);
    return 1;
  }
  for (const stack of assembly.stacks) {
    const count = Object.keys((stack.template as { Resources?: object }).Resources ?? {}).length;
    console.log(`${stack.stackName}: ${count} resources -> ${stack.templateFullPath}`);
  }
  return 0;
}

process.exitCode = main();
