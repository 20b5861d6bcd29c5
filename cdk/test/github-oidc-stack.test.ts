import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { asArray, logicalIdOf, roleStatements, synth } from './helpers';

const role = (name: string) => (p: Record<string, unknown>) => p.RoleName === name;

describe('SsmGitHubOidc', () => {
  const { oidcTemplate: t } = synth();
  const resources = t.toJSON().Resources;
  const deployId = logicalIdOf(t, 'AWS::IAM::Role', role('ssm-github-deploy'));
  const planId = logicalIdOf(t, 'AWS::IAM::Role', role('ssm-github-plan'));
  const providerId = logicalIdOf(t, 'AWS::IAM::OIDCProvider');

  it('creates a plain OIDC provider for GitHub with the STS audience (no custom resource)', () => {
    t.resourceCountIs('AWS::IAM::OIDCProvider', 1);
    t.resourceCountIs('AWS::CloudFormation::CustomResource', 0);
    t.resourceCountIs('AWS::Lambda::Function', 0);
    t.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
  });

  const trustOf = (id: string) => resources[id].Properties.AssumeRolePolicyDocument.Statement;

  it("trusts only the deploy branch of this repository, with exact conditions", () => {
    assert.deepEqual(trustOf(deployId), [
      {
        Action: 'sts:AssumeRoleWithWebIdentity',
        Effect: 'Allow',
        Principal: { Federated: { 'Fn::GetAtt': [providerId, 'Arn'] } },
        Condition: {
          StringEquals: {
            'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
            'token.actions.githubusercontent.com:sub': 'repo:acme/serverless-ssm:ref:refs/heads/main',
          },
        },
      },
    ]);
  });

  it("trusts only this repository's pull requests for planning, with exact conditions", () => {
    assert.deepEqual(trustOf(planId), [
      {
        Action: 'sts:AssumeRoleWithWebIdentity',
        Effect: 'Allow',
        Principal: { Federated: { 'Fn::GetAtt': [providerId, 'Arn'] } },
        Condition: {
          StringEquals: {
            'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
            'token.actions.githubusercontent.com:sub': 'repo:acme/serverless-ssm:pull_request',
          },
        },
      },
    ]);
  });

  const actionsOf = (id: string) => roleStatements(t, id).flatMap((s) => asArray<string>(s.Action));

  it('lets the deploy role assume exactly the CDK deploy, file-publishing and lookup roles', () => {
    const assume = roleStatements(t, deployId).find((s) => s.Action === 'sts:AssumeRole');
    assert.ok(assume);
    const names = assume.Resource.map((r: any) => JSON.stringify(r));
    assert.equal(names.length, 3);
    for (const kind of ['deploy', 'file-publishing', 'lookup']) {
      assert.ok(names.some((n: string) => n.includes(`:role/cdk-hnb659fds-${kind}-role-`)), kind);
    }
  });

  it('lets the plan role create, describe and delete change sets, never execute them', () => {
    const actions = actionsOf(planId);
    for (const a of ['cloudformation:CreateChangeSet', 'cloudformation:DescribeChangeSet', 'cloudformation:DeleteChangeSet']) {
      assert.ok(actions.includes(a), a);
    }
    for (const a of actions) {
      assert.ok(!a.includes('*'), `no wildcard action: ${a}`);
      assert.ok(
        !['cloudformation:ExecuteChangeSet', 'cloudformation:UpdateStack', 'cloudformation:CreateStack', 'cloudformation:DeleteStack'].includes(a),
        `plan role must not change stacks: ${a}`,
      );
    }
    // It may not assume the bootstrap deploy role either (that role can execute change sets).
    const assume = roleStatements(t, planId).find((s) => s.Action === 'sts:AssumeRole');
    assert.ok(assume);
    assert.ok(asArray(assume.Resource).every((r: any) => !JSON.stringify(r).includes('-deploy-role-')));
  });

  it('gives the plan role (pull-request code) nothing that writes what apply, reconcile or the sweep read', () => {
    // Exactly these actions: a new one must be argued for here.
    assert.deepEqual([...new Set(actionsOf(planId))].sort(), [
      'cloudformation:CreateChangeSet',
      'cloudformation:DeleteChangeSet',
      'cloudformation:DescribeChangeSet',
      'cloudformation:DescribeStackEvents',
      'cloudformation:DescribeStacks',
      'cloudformation:GetTemplate',
      'cloudformation:ListChangeSets',
      'iam:PassRole',
      's3:GetObject',
      'ssm:GetParameter',
      'ssm:GetParameters',
      'sts:AssumeRole',
    ]);
    // The only role it may assume is the read-only lookup role: never file-publishing (which may
    // overwrite any asset object, the code reconcile restores), image-publishing or deploy.
    const assumed = roleStatements(t, planId)
      .filter((s) => s.Action === 'sts:AssumeRole')
      .flatMap((s) => asArray(s.Resource))
      .map((r) => JSON.stringify(r));
    assert.equal(assumed.length, 1);
    assert.match(assumed[0], /:role\/cdk-hnb659fds-lookup-role-/);
    const change = roleStatements(t, planId).find((s) => asArray<string>(s.Action).includes('cloudformation:CreateChangeSet'));
    assert.match(JSON.stringify(change?.Resource), /:stack\/SsmServerless\/\*"\]\]\}$/);
  });

  it('lets the deploy role put metrics in the ServerlessSSM/Deploy namespace only', () => {
    const put = roleStatements(t, deployId).filter((s) => asArray<string>(s.Action).some((a) => a.startsWith('cloudwatch:')));
    assert.deepEqual(put, [
      {
        Sid: 'PutDeploySecurityMetrics',
        Action: 'cloudwatch:PutMetricData',
        Effect: 'Allow',
        Resource: '*',
        Condition: { StringEquals: { 'cloudwatch:namespace': 'ServerlessSSM/Deploy' } },
      },
    ]);
    assert.ok(!actionsOf(planId).some((a) => a.startsWith('cloudwatch:')), 'a pull request cannot put (or mute) them');
  });

  it('lets the deploy role read undeclared function access and restore only its own stack\'s secret policies', () => {
    const secrets = roleStatements(t, deployId).find((s) => s.Sid === 'RestoreDeclaredSecretPolicies');
    assert.deepEqual(asArray<string>(secrets?.Action).sort(), [
      'secretsmanager:DeleteResourcePolicy',
      'secretsmanager:GetResourcePolicy',
      'secretsmanager:PutResourcePolicy',
    ]);
    assert.deepEqual(secrets?.Condition, {
      StringEquals: { 'secretsmanager:ResourceTag/aws:cloudformation:stack-name': 'SsmServerless' },
    });
    const lambda = roleStatements(t, deployId).find((s) => s.Sid === 'ReadUndeclaredFunctionAccess');
    assert.deepEqual(asArray<string>(lambda?.Action).sort(), ['lambda:GetFunctionUrlConfig', 'lambda:GetPolicy']);
    assert.match(JSON.stringify(lambda?.Resource), /:function:SsmServerless-\*"\]\]\}$/);
    for (const a of ['secretsmanager:PutResourcePolicy', 'lambda:GetPolicy']) {
      assert.ok(!actionsOf(planId).includes(a), `a pull request cannot ${a}`);
    }
  });

  it('alarms on the first AssetTampered and the first UnrevertableDrift of the Serverless SSM stack', () => {
    const alarms = Object.values(t.findResources('AWS::CloudWatch::Alarm')).map((r) => r.Properties);
    assert.deepEqual(alarms.map((a) => a.MetricName).sort(), ['AssetTampered', 'UnrevertableDrift']);
    for (const a of alarms) {
      assert.equal(a.Namespace, 'ServerlessSSM/Deploy');
      assert.deepEqual(a.Dimensions, [{ Name: 'Stack', Value: 'SsmServerless' }]);
      assert.equal(a.Statistic, 'Sum');
      assert.equal(a.Threshold, 1);
      assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
      assert.equal(a.EvaluationPeriods, 1);
      assert.equal(a.TreatMissingData, 'notBreaching');
    }
  });

  it('lets both roles read the bootstrap version parameter the template resolves, and no other', () => {
    for (const id of [deployId, planId]) {
      const read = roleStatements(t, id).filter((s) => asArray<string>(s.Action).some((a) => a.startsWith('ssm:')));
      assert.equal(read.length, 1);
      assert.deepEqual(read[0].Action, ['ssm:GetParameter', 'ssm:GetParameters']);
      assert.match(JSON.stringify(read[0].Resource), /:parameter\/cdk-bootstrap\/hnb659fds\/version"\]\]\}$/);
    }
  });

  it('passes the CloudFormation execution role only to CloudFormation', () => {
    const pass = roleStatements(t, planId).find((s) => s.Action === 'iam:PassRole');
    assert.deepEqual(pass?.Condition, { StringEquals: { 'iam:PassedToService': 'cloudformation.amazonaws.com' } });
    assert.match(JSON.stringify(pass?.Resource), /cdk-hnb659fds-cfn-exec-role-/);
  });

  it('outputs both role ARNs', () => {
    t.hasOutput('DeployRoleArn', { Value: { 'Fn::GetAtt': [deployId, 'Arn'] } });
    t.hasOutput('PlanRoleArn', { Value: { 'Fn::GetAtt': [planId, 'Arn'] } });
  });
});

describe('SsmGitHubOidc settings', () => {
  it('reuses an existing provider and follows the branch, GHES issuer and qualifier settings', () => {
    const existing = 'arn:aws:iam::111122223333:oidc-provider/github.example.com/_services/token';
    const { oidcTemplate: t } = synth({
      existingOidcProviderArn: existing,
      githubOidcUrl: 'https://github.example.com/_services/token',
      githubBranch: 'release',
      bootstrapQualifier: 'ssm01',
    });
    t.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    t.hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'ssm-github-deploy',
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectEquals({
            Action: 'sts:AssumeRoleWithWebIdentity',
            Effect: 'Allow',
            Principal: { Federated: existing },
            Condition: {
              StringEquals: {
                'github.example.com/_services/token:aud': 'sts.amazonaws.com',
                'github.example.com/_services/token:sub': 'repo:acme/serverless-ssm:ref:refs/heads/release',
              },
            },
          }),
        ],
      },
    });
    assert.match(JSON.stringify(t.toJSON()), /cdk-ssm01-deploy-role-/);
    assert.doesNotMatch(JSON.stringify(t.toJSON()), /hnb659fds/);
  });
});
