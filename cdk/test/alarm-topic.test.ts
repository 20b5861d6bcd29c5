import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { BASE_CONTEXT, fixtureAssetDir, synth } from './helpers';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:ssm-alarms';

/** Every alarm of every stack of a synthesized app, by stack and logical id. */
function alarms(context: Record<string, unknown>): [string, Record<string, unknown>][] {
  const built = synth(context);
  const stacks = [built.oidc, built.serverless, ...(built.githubApp ? [built.githubApp] : [])];
  return stacks.flatMap((stack) =>
    Object.entries(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')).map(
      ([id, r]): [string, Record<string, unknown>] => [`${stack.stackName}/${id}`, r.Properties as Record<string, unknown>],
    ),
  );
}

describe('alarmTopicArn', () => {
  it('wires every alarm of the three stacks to the topic, on ALARM and on OK', () => {
    const all = alarms({ brokerUrl: undefined, alarmTopicArn: TOPIC });
    // The deploy security alarms, the integrity DLQ and configuration alarms, the App's.
    assert.ok(all.length >= 5, `only ${all.map(([id]) => id).join(', ')}`);
    assert.ok(all.some(([id]) => id.startsWith('SsmGitHubOidc/')));
    assert.ok(all.some(([id]) => id.startsWith('SsmServerless/')));
    assert.ok(all.some(([id]) => id.startsWith('SsmGitHubApp/')));
    for (const [id, props] of all) {
      assert.deepEqual(props.AlarmActions, [TOPIC], id);
      assert.deepEqual(props.OKActions, [TOPIC], id);
    }
  });

  it('leaves the alarms without actions when unset', () => {
    for (const [id, props] of alarms({ brokerUrl: undefined })) {
      assert.equal(props.AlarmActions, undefined, id);
    }
  });

  it('refuses what is not an SNS topic ARN', () => {
    for (const bad of ['ssm-alarms', 'arn:aws:sqs:eu-west-1:123456789012:q', 'arn:aws:sns:eu-west-1:123456789012:t.fifo']) {
      assert.throws(
        () => buildApp({ env: {}, context: { ...BASE_CONTEXT, lambdaAssetDir: fixtureAssetDir(), alarmTopicArn: bad } }),
        /alarmTopicArn/,
        bad,
      );
    }
  });
});
