/**
 * The EventBridge pattern that feeds the integrity queue: write calls (EventBridge never delivers
 * read-only calls) to the services whose resources this stack owns, that succeeded, and that
 * CloudFormation did not make itself.
 *
 * Why `$or`: console, CLI and SDK calls carry no `userIdentity.invokedBy` at all, and an
 * `anything-but` matcher only matches a field that is present, so `anything-but` alone would drop
 * exactly the out-of-band changes we are here to catch. `exists: false` keeps them.
 *
 * IAM is a global service: its CloudTrail events reach EventBridge in us-east-1 only, so IAM
 * changes are seen by the rule only when the stack is deployed there; the scheduled drift sweep
 * covers IAM everywhere.
 */

/** Sources of the services whose resources the stack owns. */
export const WATCHED_SOURCES = ['aws.lambda', 'aws.apigateway', 'aws.secretsmanager', 'aws.events', 'aws.iam'] as const;

/** The service principal CloudFormation calls other services as (`userIdentity.invokedBy`). */
export const CLOUDFORMATION_PRINCIPAL = 'cloudformation.amazonaws.com';

/** The rule's pattern, exactly as it appears in the template. */
export const INTEGRITY_EVENT_PATTERN = {
  source: [...WATCHED_SOURCES],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    // A call that failed changed nothing.
    errorCode: [{ exists: false }],
    $or: [
      { userIdentity: { invokedBy: [{ exists: false }] } },
      { userIdentity: { invokedBy: [{ 'anything-but': [CLOUDFORMATION_PRINCIPAL] }] } },
    ],
  },
};
