/**
 * The EventBridge pattern that feeds the integrity queue: write calls (EventBridge never delivers
 * read-only calls) to the services whose resources this stack owns, that succeeded.
 *
 * CloudFormation's own calls are included: the integrity Lambda decides whether CloudFormation
 * acted for this stack (our execution role, during one of our stack's operations, read from
 * DescribeStackEvents) or for another stack, which is drift (issue 19, point 4). An earlier
 * pattern dropped every call `invokedBy` CloudFormation here, so another stack could change ours
 * unseen.
 *
 * IAM is a global service: its CloudTrail events reach EventBridge in us-east-1 only, so IAM
 * changes are seen by the rule only when the stack is deployed there; the scheduled drift sweep
 * covers IAM everywhere.
 */

/** Sources of the services whose resources the stack owns. */
export const WATCHED_SOURCES = ['aws.lambda', 'aws.apigateway', 'aws.secretsmanager', 'aws.events', 'aws.iam'] as const;

/** The rule's pattern, exactly as it appears in the template. */
export const INTEGRITY_EVENT_PATTERN = {
  source: [...WATCHED_SOURCES],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    // A call that failed changed nothing.
    errorCode: [{ exists: false }],
  },
};
