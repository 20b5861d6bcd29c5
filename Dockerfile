# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target app -t ssm-app .     the GitHub App (webhooks + token broker), port 8080
#   docker build -t ssm-action .               the deploy Action (the LAST stage: GitHub builds the
#                                              last stage for `runs.image: Dockerfile`)
# Both run a single static-glibc Rust binary on distroless (no shell, no package manager), non-root,
# with the binary itself as the exec-form entrypoint: a shell wrapper would drop the Action's
# dashed input variables (INPUT_ROLE-TO-ASSUME).

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

FROM source AS build-action
RUN cargo build --release --locked -p ssm-action \
 && install -D -m 0755 target/release/ssm-action /out/ssm-action

# The Action. GitHub mounts the workspace and the file-command files ($GITHUB_OUTPUT,
# $GITHUB_STEP_SUMMARY) owned by the runner's user, uid 1001 on GitHub-hosted runners; running as
# that uid (not root) keeps them writable. Self-hosted runners with another uid can override it
# with `docker run --user` or a prebuilt image.
FROM gcr.io/distroless/cc-debian12:nonroot AS action
COPY --from=build-action /out/ssm-action /usr/local/bin/ssm-action
LABEL org.opencontainers.image.title="ssm-action" \
      org.opencontainers.image.description="Serverless SSM deploy Action: OIDC, CDK assets, CloudFormation change sets"
USER 1001
ENTRYPOINT ["/usr/local/bin/ssm-action"]
