/** ARNs of the resources the CDK bootstrap stack (`cdk bootstrap`, default synthesizer) creates. */
import { Aws, Stack } from 'aws-cdk-lib';

/** The roles of a standard CDK bootstrap, by the middle part of their names. */
export type BootstrapRole = 'deploy' | 'file-publishing' | 'lookup' | 'cfn-exec';

/** `arn:<partition>:iam::<account>:role/cdk-<qualifier>-<kind>-role-<account>-<region>` */
export function bootstrapRoleArn(stack: Stack, qualifier: string, kind: BootstrapRole): string {
  return stack.formatArn({
    service: 'iam',
    region: '',
    resource: 'role',
    resourceName: `cdk-${qualifier}-${kind}-role-${Aws.ACCOUNT_ID}-${Aws.REGION}`,
  });
}

/** Objects of the bootstrap assets bucket (`cdk-<qualifier>-assets-<account>-<region>/*`). */
export function bootstrapAssetObjectsArn(qualifier: string): string {
  return `arn:${Aws.PARTITION}:s3:::cdk-${qualifier}-assets-${Aws.ACCOUNT_ID}-${Aws.REGION}/*`;
}

/** A role of this account by name (roles created with a fixed name by another stack). */
export function roleArnByName(stack: Stack, roleName: string): string {
  return stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: roleName });
}
