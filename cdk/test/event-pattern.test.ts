import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { INTEGRITY_EVENT_PATTERN } from '../lib/event-pattern';
import { matches, UnsupportedPattern } from './eventbridge-matcher';
import { logicalIdOf, synth } from './helpers';

const fixture = (name: string): unknown =>
  JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'events', name), 'utf8'));

describe('the integrity rule in the template', () => {
  const { serverlessTemplate } = synth();
  const rules = serverlessTemplate.toJSON().Resources;
  const ruleId = logicalIdOf(serverlessTemplate, 'AWS::Events::Rule', (p) => p.EventPattern !== undefined);
  const pattern = rules[ruleId].Properties.EventPattern;

  it('is exactly the reviewed pattern', () => {
    assert.deepEqual(pattern, {
      source: ['aws.lambda', 'aws.apigateway', 'aws.secretsmanager', 'aws.events', 'aws.iam'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: { errorCode: [{ exists: false }] },
    });
  });

  it('targets the integrity queue with a dead-letter queue', () => {
    const [target] = rules[ruleId].Properties.Targets;
    assert.match(target.Arn['Fn::GetAtt'][0], /^IntegrityQueue/);
    assert.match(target.DeadLetterConfig.Arn['Fn::GetAtt'][0], /^IntegrityDeadLetterQueue/);
  });

  const cases: Array<[string, boolean, string]> = [
    ['console-update-function-configuration.json', true, 'console call: no invokedBy'],
    ['cli-update-function-code.json', true, 'CLI call by an IAM user: no invokedBy'],
    ['root-console-put-role-policy.json', true, 'root identity changing an IAM role'],
    ['cli-disable-rule.json', true, 'EventBridge rule disabled from the CLI'],
    ['rotation-put-secret-value.json', true, 'rotation role: matched here, ignored by ARN in the Lambda'],
    ['other-service-update-stage.json', true, 'invoked by another AWS service, not CloudFormation'],
    ['cloudformation-update-function-code.json', true, 'CloudFormation: the Lambda decides for which stack'],
    ['failed-add-permission.json', false, 'a call that failed changed nothing'],
    ['s3-put-bucket-policy.json', false, 'a service the stack does not use'],
    ['scheduled-event.json', false, 'the sweep schedule is not a CloudTrail call'],
  ];
  for (const [name, expected, why] of cases) {
    it(`${expected ? 'matches' : 'does not match'} ${name} (${why})`, () => {
      assert.equal(matches(pattern, fixture(name)), expected);
    });
  }

  it('the exported constant is what the template holds', () => {
    assert.deepEqual(pattern, JSON.parse(JSON.stringify(INTEGRITY_EVENT_PATTERN)));
  });
});

describe('the EventBridge matcher', () => {
  const event = { source: 'aws.lambda', detail: { a: 'hello', n: 5, list: ['x', 'y'], nested: { b: 'world' } } };
  it('plain values, arrays and nesting', () => {
    assert.equal(matches({ source: ['aws.lambda', 'aws.iam'] }, event), true);
    assert.equal(matches({ source: ['aws.iam'] }, event), false);
    assert.equal(matches({ detail: { n: [5] } }, event), true);
    assert.equal(matches({ detail: { n: ['5'] } }, event), false);
    assert.equal(matches({ detail: { list: ['y'] } }, event), true);
    assert.equal(matches({ detail: { nested: { b: ['world'] } } }, event), true);
    assert.equal(matches({ detail: { missing: ['x'] } }, event), false);
  });
  it('prefix, suffix and equals-ignore-case', () => {
    assert.equal(matches({ source: [{ prefix: 'aws.' }] }, event), true);
    assert.equal(matches({ source: [{ prefix: 'custom.' }] }, event), false);
    assert.equal(matches({ detail: { a: [{ suffix: 'llo' }] } }, event), true);
    assert.equal(matches({ detail: { a: [{ 'equals-ignore-case': 'HELLO' }] } }, event), true);
  });
  it('exists', () => {
    assert.equal(matches({ detail: { a: [{ exists: true }] } }, event), true);
    assert.equal(matches({ detail: { a: [{ exists: false }] } }, event), false);
    assert.equal(matches({ detail: { zz: [{ exists: false }] } }, event), true);
    assert.equal(matches({ detail: { zz: [{ exists: true }] } }, event), false);
    assert.equal(matches({ nope: { deeper: [{ exists: false }] } }, event), true);
  });
  it('anything-but: value, list and prefix; never an absent field', () => {
    assert.equal(matches({ detail: { a: [{ 'anything-but': 'bye' }] } }, event), true);
    assert.equal(matches({ detail: { a: [{ 'anything-but': ['hello', 'bye'] }] } }, event), false);
    assert.equal(matches({ detail: { a: [{ 'anything-but': { prefix: 'he' } }] } }, event), false);
    assert.equal(matches({ detail: { zz: [{ 'anything-but': 'bye' }] } }, event), false);
  });
  it('$or needs one alternative to match', () => {
    assert.equal(matches({ detail: { $or: [{ a: ['no'] }, { n: [5] }] } }, event), true);
    assert.equal(matches({ detail: { $or: [{ a: ['no'] }, { n: [6] }] } }, event), false);
  });
  it('refuses filters it does not model', () => {
    assert.throws(() => matches({ detail: { n: [{ numeric: ['>', 1] }] } }, event), UnsupportedPattern);
    assert.throws(() => matches({ detail: { a: [{ wildcard: 'h*' }] } }, event), UnsupportedPattern);
  });
});
