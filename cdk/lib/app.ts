/**
 * Builds the CDK app: its three stacks (`SsmGitHubOidc`, `SsmGitHubApp` unless `githubApp=false`,
 * `SsmServerless`), cdk-nag's AwsSolutions checks on every construct, and the settings of
 * `cdk.json` as context defaults (so running this file directly, without the CDK CLI, sees the
 * same feature flags; values passed by the CLI or `CDK_CONTEXT_JSON` override them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Aspects, DefaultStackSynthesizer, Fn, Stack, Validations } from 'aws-cdk-lib';
import type { IAspect } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { IConstruct } from 'constructs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig } from './config';
import { brokerExportNames, defaultAudience, GitHubAppStack } from './github-app-stack';
import { GitHubOidcStack } from './github-oidc-stack';
import { ServerlessStack } from './serverless-stack';

export interface SsmApp {
  readonly app: App;
  readonly oidc: GitHubOidcStack;
  readonly serverless: ServerlessStack;
  /** The GitHub App on Lambda, unless `githubApp=false`. */
  readonly githubApp?: GitHubAppStack;
}

/** The context of `cdk/cdk.json`. */
export function cdkJsonContext(): Record<string, unknown> {
  const file = path.resolve(__dirname, '..', 'cdk.json');
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { context?: Record<string, unknown> };
  return parsed.context ?? {};
}

export interface BuildOptions {
  /** Context values that override cdk.json (tests use this instead of the environment). */
  readonly context?: Record<string, unknown>;
  readonly outdir?: string;
  /** Environment used for settings that fall back to it (`GITHUB_REPOSITORY`). */
  readonly env?: NodeJS.ProcessEnv;
}

export function buildApp(options: BuildOptions = {}): SsmApp {
  const app = new App({
    // Synthesized explicitly by the caller: never on process exit, which (when CDK_OUTDIR is set)
    // would write a partial assembly after a construction error.
    autoSynth: false,
    outdir: options.outdir,
    context: cdkJsonContext(),
    postCliContext: options.context,
  });
  const config = readConfig(app.node, options.env ?? process.env);
  const synthesizer = () => new DefaultStackSynthesizer({ qualifier: config.bootstrapQualifier });

  const oidc = new GitHubOidcStack(app, config.oidcStackName, {
    config,
    description: 'Serverless SSM: GitHub OIDC provider, deploy and plan roles (deployed once by an administrator)',
    synthesizer: synthesizer(),
  });
  // The hosted App's stack is the one source of the broker's audience (never a setting) and, unless
  // `brokerUrl` names another front for it, of its URL: SsmServerless imports both from that
  // stack's exports, so an admin's synth and CI's cannot disagree. A broker hosted elsewhere
  // (`githubApp=false`) is named by `brokerUrl` and `brokerAudience`.
  const githubApp = config.githubApp
    ? new GitHubAppStack(app, config.appStackName, {
        config,
        audience: defaultAudience(config.appStackName),
        description: 'Serverless SSM: the GitHub App (webhooks and token broker) on Lambda behind a Function URL',
        synthesizer: synthesizer(),
      })
    : undefined;
  const hosted = brokerExportNames(config.appStackName);
  const brokerConfig = githubApp
    ? { brokerUrl: config.brokerUrl ?? Fn.importValue(hosted.url), brokerAudience: Fn.importValue(hosted.audience) }
    : {};
  const serverless = new ServerlessStack(app, config.serverlessStackName, {
    config: { ...config, ...brokerConfig },
    description: 'Serverless SSM: keyring, Crypto API, rotation and integrity',
    synthesizer: synthesizer(),
  });
  // The imports need the exports: the App stack deploys first.
  if (githubApp) serverless.addDependency(githubApp);
  if (config.alarmTopicArn) Aspects.of(app).add(new AlarmTopic(config.alarmTopicArn));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { app, oidc, serverless, githubApp };
}

/**
 * Wires every CloudWatch alarm of every stack to one SNS topic (setting `alarmTopicArn`), on
 * ALARM and on OK: an aspect, so an alarm added later cannot be left out.
 */
class AlarmTopic implements IAspect {
  private readonly topics = new Map<Stack, sns.ITopic>();

  constructor(private readonly topicArn: string) {}

  visit(node: IConstruct): void {
    if (!(node instanceof cloudwatch.Alarm)) return;
    const stack = Stack.of(node);
    let topic = this.topics.get(stack);
    if (!topic) {
      topic = sns.Topic.fromTopicArn(stack, 'AlarmTopic', this.topicArn);
      this.topics.set(stack, topic);
    }
    const action = new cwActions.SnsAction(topic);
    node.addAlarmAction(action);
    node.addOkAction(action);
  }
}
