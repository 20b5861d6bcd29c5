/**
 * `SsmGitHubOidc`: deployed once by an administrator. It lets this repository's GitHub Actions
 * workflows reach AWS with short-lived OIDC credentials instead of stored keys.
 *
 * - The GitHub OIDC provider: a plain `AWS::IAM::OIDCProvider` (no custom resource), or an
 *   existing one (an account holds one provider per issuer URL).
 * - The deploy role: trusted only for `aud` `sts.amazonaws.com` and the `sub` of this repository's
 *   deploy branch. It may assume the CDK bootstrap roles (as `cdk deploy` does: CloudFormation
 *   calls through the bootstrap deploy role, uploads through the file-publishing role), and read
 *   and restore the code of the Serverless SSM stack's functions (the reconcile mode's code check),
 *   and put metrics in the `ServerlessSSM/Deploy` namespace only.
 * - The plan role: trusted only for this repository's `pull_request` runs, which run the pull
 *   request's own scripts. It may create, describe and delete change sets of the Serverless SSM
 *   stack, never execute them, and assume the CDK lookup role (read-only). It writes nothing that
 *   apply, reconcile or the drift sweep read: no file-publishing role (the assets bucket is what
 *   they deploy and restore from), no S3 or ECR write, no metric. Plans publish nothing.
 * - Two alarms on the metrics the deploy Action puts from the deploy role (namespace
 *   `ServerlessSSM/Deploy`, dimension `Stack`): `AssetTampered` (an asset object in the bootstrap
 *   bucket differed from the commit's build) and `UnrevertableDrift` (a change CloudFormation cannot
 *   put back). Either is a security event; the run that saw it has failed with an annotation.
 */
import { ArnFormat, CfnOutput, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { bootstrapAssetObjectsArn, bootstrapRoleArn } from './bootstrap';
import { oidcIssuerHost, type SsmConfig } from './config';

export interface GitHubOidcStackProps extends StackProps {
  readonly config: SsmConfig;
}

/** The audience GitHub's token carries when requested for AWS STS. */
export const STS_AUDIENCE = 'sts.amazonaws.com';

/** Where the deploy Action puts its security metrics (`cloudwatch:namespace` of the deploy role's grant). */
export const DEPLOY_METRICS_NAMESPACE = 'ServerlessSSM/Deploy';
/** The deploy Action's security metrics, each with one alarm here (dimension `Stack`). */
export const DEPLOY_ALARM_METRICS = {
  AssetTampered: 'An asset object in the CDK bootstrap bucket differed from the build of the deployed commit (overwritten outside the deploy)',
  UnrevertableDrift: 'A change to the stack that CloudFormation cannot revert (an undeclared policy, permission or URL): see the failed deploy run',
} as const;

/** The `sub` claims the two roles trust. */
export function trustedSubjects(config: SsmConfig): { deploy: string; plan: string } {
  const repo = `repo:${config.githubOwner}/${config.githubRepo}`;
  return { deploy: `${repo}:ref:refs/heads/${config.githubBranch}`, plan: `${repo}:pull_request` };
}

export class GitHubOidcStack extends Stack {
  readonly deployRole: iam.Role;
  readonly planRole: iam.Role;
  readonly providerArn: string;
  /** `AssetTampered` and `UnrevertableDrift`, in that order. */
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: GitHubOidcStackProps) {
    super(scope, id, props);
    const { config } = props;
    const issuer = oidcIssuerHost(config.githubOidcUrl);

    if (config.existingOidcProviderArn) {
      this.providerArn = config.existingOidcProviderArn;
    } else {
      const provider = new iam.CfnOIDCProvider(this, 'GitHubOidcProvider', {
        url: config.githubOidcUrl,
        clientIdList: [STS_AUDIENCE],
      });
      this.providerArn = provider.attrArn;
    }

    const subjects = trustedSubjects(config);
    const trust = (sub: string) =>
      new iam.FederatedPrincipal(
        this.providerArn,
        { StringEquals: { [`${issuer}:aud`]: STS_AUDIENCE, [`${issuer}:sub`]: sub } },
        'sts:AssumeRoleWithWebIdentity',
      );
    const q = config.bootstrapQualifier;
    const stackArn = this.formatArn({
      service: 'cloudformation',
      resource: 'stack',
      resourceName: `${config.serverlessStackName}/*`,
    });

    // CloudFormation resolves the template's BootstrapVersion parameter (an SSM parameter type)
    // with the caller's credentials, and the Action checks it before deploying.
    const readBootstrapVersion = () =>
      new iam.PolicyStatement({
        sid: 'ReadBootstrapVersion',
        actions: ['ssm:GetParameter', 'ssm:GetParameters'],
        resources: [this.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `cdk-bootstrap/${q}/version` })],
      });

    this.deployRole = new iam.Role(this, 'DeployRole', {
      roleName: config.deployRoleName,
      description: `GitHub Actions deploys of ${config.githubOwner}/${config.githubRepo}@${config.githubBranch}`,
      assumedBy: trust(subjects.deploy),
      inlinePolicies: {
        Deploy: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'AssumeCdkBootstrapRoles',
              actions: ['sts:AssumeRole'],
              resources: (['deploy', 'file-publishing', 'lookup'] as const).map((k) => bootstrapRoleArn(this, q, k)),
            }),
            readBootstrapVersion(),
            new iam.PolicyStatement({
              sid: 'CheckAndRestoreFunctionCode',
              actions: ['lambda:GetFunction', 'lambda:UpdateFunctionCode'],
              resources: [this.formatArn({ service: 'lambda', resource: 'function', resourceName: `${config.serverlessStackName}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
            }),
            // Reconcile looks for what CloudFormation drift cannot see (action/src/undeclared.rs):
            // Lambda permissions and Function URLs nobody declared are named, a secret's resource
            // policy is put back as declared (or removed when none is declared).
            new iam.PolicyStatement({
              sid: 'ReadUndeclaredFunctionAccess',
              actions: ['lambda:GetPolicy', 'lambda:GetFunctionUrlConfig'],
              resources: [this.formatArn({ service: 'lambda', resource: 'function', resourceName: `${config.serverlessStackName}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
            }),
            new iam.PolicyStatement({
              sid: 'RestoreDeclaredSecretPolicies',
              actions: ['secretsmanager:GetResourcePolicy', 'secretsmanager:PutResourcePolicy', 'secretsmanager:DeleteResourcePolicy'],
              resources: [this.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
              // Only the secrets of the stack this role deploys (CloudFormation tags what it creates).
              conditions: { StringEquals: { 'secretsmanager:ResourceTag/aws:cloudformation:stack-name': config.serverlessStackName } },
            }),
            new iam.PolicyStatement({
              sid: 'ReadAssetsForCodeRestore',
              actions: ['s3:GetObject'],
              resources: [bootstrapAssetObjectsArn(q)],
            }),
            new iam.PolicyStatement({
              sid: 'PutDeploySecurityMetrics',
              actions: ['cloudwatch:PutMetricData'],
              // PutMetricData has no resource type: the namespace condition is its only scope.
              resources: ['*'],
              conditions: { StringEquals: { 'cloudwatch:namespace': DEPLOY_METRICS_NAMESPACE } },
            }),
          ],
        }),
      },
    });

    this.planRole = new iam.Role(this, 'PlanRole', {
      roleName: config.planRoleName,
      description: `GitHub Actions pull-request plans of ${config.githubOwner}/${config.githubRepo} (change sets, never executed)`,
      assumedBy: trust(subjects.plan),
      inlinePolicies: {
        Plan: new iam.PolicyDocument({
          statements: [
            // Not the file-publishing role: it may overwrite any object of the assets bucket, the
            // code that apply and reconcile install. A pull request's run is untrusted code.
            new iam.PolicyStatement({
              sid: 'AssumeCdkLookupRole',
              actions: ['sts:AssumeRole'],
              resources: [bootstrapRoleArn(this, q, 'lookup')],
            }),
            new iam.PolicyStatement({
              sid: 'ChangeSetsWithoutExecute',
              actions: [
                'cloudformation:CreateChangeSet',
                'cloudformation:DescribeChangeSet',
                'cloudformation:DeleteChangeSet',
                'cloudformation:ListChangeSets',
                'cloudformation:DescribeStacks',
                'cloudformation:DescribeStackEvents',
                'cloudformation:GetTemplate',
              ],
              resources: [stackArn],
            }),
            new iam.PolicyStatement({
              sid: 'PassExecutionRoleToCloudFormation',
              actions: ['iam:PassRole'],
              resources: [bootstrapRoleArn(this, q, 'cfn-exec')],
              conditions: { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } },
            }),
            readBootstrapVersion(),
            new iam.PolicyStatement({
              sid: 'ReadTemplatesFromAssetsBucket',
              actions: ['s3:GetObject'],
              resources: [bootstrapAssetObjectsArn(q)],
            }),
          ],
        }),
      },
    });

    // cdk-nag: each wildcard below is acknowledged on its own, with the reason it cannot be narrower.
    const functionNames = `Resource::arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:${config.serverlessStackName}-*`;
    const assetObjects = `Resource::arn:<AWS::Partition>:s3:::cdk-${q}-assets-<AWS::AccountId>-<AWS::Region>/*`;
    const stackIds = `Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/${config.serverlessStackName}/*`;
    const assetReason =
      'Asset object keys are content hashes chosen at synth time; the statement is confined to the one ' +
      'CDK bootstrap assets bucket of this account and region, and grants reads only.';
    Validations.of(this.deployRole).acknowledge(
      {
        id: `AwsSolutions-IAM5[${functionNames}]`,
        reason:
          'Function names are generated by CloudFormation as <stack name>-<logical id>-<suffix> and are unknown ' +
          'until the Serverless SSM stack exists; the stack-name prefix confines the statement to that stack.',
      },
      { id: `AwsSolutions-IAM5[${assetObjects}]`, reason: assetReason },
      {
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]',
        reason:
          'Secret ARNs end with a random suffix and the names are generated by CloudFormation; the statement is ' +
          `confined by its aws:cloudformation:stack-name tag condition to the secrets of ${config.serverlessStackName}.`,
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'cloudwatch:PutMetricData supports no resource-level permission; the statement is confined by its ' +
          `cloudwatch:namespace condition to ${DEPLOY_METRICS_NAMESPACE}.`,
      },
    );
    Validations.of(this.planRole).acknowledge(
      {
        id: `AwsSolutions-IAM5[${stackIds}]`,
        reason:
          'A stack ARN ends with a stack id assigned at creation; the statement names the one Serverless SSM ' +
          'stack and leaves only that id open.',
      },
      { id: `AwsSolutions-IAM5[${assetObjects}]`, reason: assetReason },
    );

    this.alarms = Object.entries(DEPLOY_ALARM_METRICS).map(
      ([metricName, description]) =>
        new cloudwatch.Alarm(this, `${metricName}Alarm`, {
          alarmDescription: `${config.serverlessStackName}: ${description}`,
          metric: new cloudwatch.Metric({
            namespace: DEPLOY_METRICS_NAMESPACE,
            metricName,
            dimensionsMap: { Stack: config.serverlessStackName },
            statistic: 'Sum',
            period: Duration.minutes(5),
          }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          // Put only when it happens: no data is the normal state.
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
    );

    new CfnOutput(this, 'DeployRoleArn', {
      value: this.deployRole.roleArn,
      description: 'role-to-assume for pushes to the deploy branch (apply, reconcile)',
    });
    new CfnOutput(this, 'PlanRoleArn', {
      value: this.planRole.roleArn,
      description: 'role-to-assume for pull requests (plan)',
    });
    new CfnOutput(this, 'OidcProviderArn', { value: this.providerArn });
  }
}
