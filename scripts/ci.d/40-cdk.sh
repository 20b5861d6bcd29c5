#!/usr/bin/env bash
# The CDK app: type check, node tests (fixture zips, no Rust build needed), synth of the real
# stacks from the Lambda zips that 20-lambdas.sh built, and cfn-lint on every synthesized template.
source "$(dirname "$0")/../lib.sh"
cd "$SSM_ROOT"

# Settings for CI's synth: any syntactically valid repository will do for the checks. No brokerUrl:
# SsmServerless's broker is SsmGitHubApp's Function URL (the variant with the trail names one instead).
ctx=(-c githubOwner=serverless-ssm-ci -c githubRepo=serverless-ssm)

log "cdk: tsc --noEmit"
(cd cdk && ./node_modules/.bin/tsc --noEmit)

log "cdk: node --test"
(cd cdk && node --import tsx --test test/*.test.ts)

bash scripts/synth.sh "${ctx[@]}"
# The optional trail adds resources of its own; lint that variant too.
trail_out="$SSM_ROOT/build/cdk-trail.out"
SSM_CDK_OUT="$trail_out" bash scripts/synth.sh "${ctx[@]}" -c createTrail=true -c brokerUrl=https://broker.example.com

log "cfn-lint"
# W3005 (DependsOn already enforced by a Ref/GetAtt) is ignored: aws-cdk-lib's lambda.Function adds
# an explicit DependsOn on its role (and the role's policies) so that the policies exist before the
# function is created; the redundancy is CDK's, harmless, and not ours to remove.
cfn-lint --ignore-checks W3005 -- cdk/cdk.out/*.template.json "$trail_out"/*.template.json
log "cfn-lint: clean"
