/**
 * `SsmGitHubOidc`: deployed once by an administrator. It lets this repository's GitHub Actions
 * workflows reach AWS with short-lived OIDC credentials instead of stored keys.
 *
 * - The GitHub OIDC provider: a plain `AWS::IAM::OIDCProvider` (no custom resource), or an
 *   existing one (an account holds one provider per issuer URL).
 * - The deploy role: trusted only for `aud` `sts.amazonaws.com` and the `sub` of this repository's
 *   deploy branch. It may assume the CDK bootstrap roles (as `cdk deploy` does: CloudFormation
 *   calls through the bootstrap deploy role, uploads through the file-publishing role), and read
 *   and restore the code of the Serverless SSM stack's functions (the reconcile mode's code check).
 * - The plan role: trusted only for this repository's `pull_request` runs. It may create, describe
 *   and delete change sets of the Serverless SSM stack, never execute them.
 */
import { ArnFormat, CfnOutput, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { bootstrapAssetObjectsArn, bootstrapRoleArn } from './bootstrap';
import { oidcIssuerHost, type SsmConfig } from './config';

export interface GitHubOidcStackProps extends StackProps {
  readonly config: SsmConfig;
}

/** The audience GitHub's token carries when requested for AWS STS. */
export const STS_AUDIENCE = 'sts.amazonaws.com';

/** The `sub` claims the two roles trust. */
export function trustedSubjects(config: SsmConfig): { deploy: string; plan: string } {
  const repo = `repo:${config.githubOwner}/${config.githubRepo}`;
  return { deploy: `${repo}:ref:refs/heads/${config.githubBranch}`, plan: `${repo}:pull_request` };
}

export class GitHubOidcStack extends Stack {
  readonly deployRole: iam.Role;
  readonly planRole: iam.Role;
  readonly providerArn: string;

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
            new iam.PolicyStatement({
              sid: 'ReadAssetsForCodeRestore',
              actions: ['s3:GetObject'],
              resources: [bootstrapAssetObjectsArn(q)],
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
            new iam.PolicyStatement({
              sid: 'AssumeCdkPublishingAndLookupRoles',
              actions: ['sts:AssumeRole'],
              resources: (['file-publishing', 'lookup'] as const).map((k) => bootstrapRoleArn(this, q, k)),
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
