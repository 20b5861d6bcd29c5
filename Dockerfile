# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target app -t ssm-app .     the GitHub App (webhooks + token broker), port 8080
#   docker build -t ssm-action .               the deploy Action (the LAST stage: GitHub builds the
#                                              last stage for `runs.image: Dockerfile`)
# Both run a single Rust binary on distroless (no shell, no package manager), with the binary itself
# as the exec-form entrypoint: a shell wrapper would drop the Action's dashed input variables
# (INPUT_ROLE-TO-ASSUME). The App runs as distroless's nonroot user; the Action runs as root, as
# GitHub requires of container actions (below).
# Releases do not build this in the workflow run: the release workflow pushes the Action's image
# and pins action.yml to it by digest (scripts/release-action-yml.sh).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS source
WORKDIR /src
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
COPY . .

FROM source AS build-app
RUN cargo build --release --locked -p ssm-app \
 && install -D -m 0755 target/release/ssm-app /out/ssm-app

FROM gcr.io/distroless/cc-debian12:nonroot AS app
COPY --from=build-app /out/ssm-app /usr/local/bin/ssm-app
ENV SSM_APP_LISTEN=0.0.0.0:8080
EXPOSE 8080
# distroless's nonroot user
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ssm-app"]

# The `action` profile (Cargo.toml): optimised for size, which is what the Action's memory is.
FROM source AS build-action
RUN cargo build --profile action --locked -p ssm-action \
 && install -D -m 0755 target/action/ssm-action /out/ssm-action

# The Action. GitHub runs container actions as the image's user and documents that they must be
# the default Docker user, root, with no USER instruction: the workspace and the file-command files
# ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY) it mounts belong to the runner's user, whose uid differs
# between hosted and self-hosted runners. The Action writes nothing in the workspace, so root leaves
# no root-owned files behind. Distroless publishes no version tags, only `latest` (root) and
# `nonroot`; releases record the exact base in the image's provenance.
# hadolint ignore=DL3007
FROM gcr.io/distroless/cc-debian12:latest AS action
COPY --from=build-action /out/ssm-action /usr/local/bin/ssm-action
LABEL org.opencontainers.image.title="ssm-action" \
      org.opencontainers.image.description="Serverless SSM deploy Action: OIDC, CDK assets, CloudFormation change sets"
ENTRYPOINT ["/usr/local/bin/ssm-action"]
