//! The `ssm` command line: reads bytes from a file or stdin, calls one route of one key, writes
//! the answer to stdout. Errors go to stderr with what to do about them, and an exit code per
//! cause (see [`Exit`]).
//!
//! Nothing secret is logged: `--verbose` shows routes, statuses, attempts and timings only.
//! A data key's plaintext is written only to a file the caller names (created, never
//! overwritten, readable by the owner only), never to the terminal.

use std::io::{IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aws_config::Region;
use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::client::{api_id_of_endpoint, region_of_endpoint};
use crate::error::error_chain;
use crate::{ClientConfig, ClientError, CryptoClient, ExposeSecret as _, KeyName, RetryPolicy};

/// The most the CLI reads as input: more could not reach the service anyway (Lambda takes at
/// most 6 MB of request, and base64 makes 4.5 MiB of that 6 MiB).
pub const MAX_INPUT: u64 = 6 * 1024 * 1024;

/// Encrypt, decrypt, rewrap, make data keys and MACs with the Serverless SSM Crypto API.
#[derive(Debug, Parser)]
#[command(name = "ssm", version)]
pub struct Cli {
    /// The API's base URL (the stack's `ApiUrl` output).
    #[arg(long, env = "SSM_ENDPOINT", global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Find the endpoint in this CloudFormation stack's `ApiUrl` output instead.
    #[arg(long, env = "SSM_STACK", global = true, value_name = "NAME")]
    pub stack: Option<String>,
    /// The region to sign for (default: the endpoint's, else the AWS configuration's).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The AWS profile whose credentials sign (default: the default chain's choice).
    #[arg(long, env = "AWS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// Attempts in all when the API throttles (429) or is unavailable (502/503/504).
    #[arg(long, global = true, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
    /// Seconds one attempt may take.
    #[arg(long, global = true, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    /// Log routes, statuses, retries and timings on stderr (never data, keys or credentials).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encrypt the input; prints the envelope.
    Encrypt(DataArgs),
    /// Decrypt an envelope; writes the plaintext bytes.
    Decrypt(DataArgs),
    /// Re-encrypt an envelope under the key's primary version; prints the new envelope.
    Rewrap(DataArgs),
    /// A fresh 256-bit data key: prints its wrapped form as JSON; the plaintext key goes only to
    /// --plaintext-key-out.
    Datakey(DataKeyArgs),
    /// An HMAC-SHA256 of the input; prints the MAC.
    Hmac(MacArgs),
    /// Checks a MAC of the input: prints `valid` (exit 0) or `invalid` (exit 1).
    Verify(VerifyArgs),
    /// The key's versions and policy, as JSON.
    Info(KeyArg),
}

#[derive(Debug, Args)]
pub struct KeyArg {
    /// The key's name.
    #[arg(long, short, default_value = "default")]
    pub key: KeyName,
}

#[derive(Debug, Args)]
pub struct ContextArgs {
    /// Context (additional authenticated data) as text; decrypting needs the same.
    #[arg(long, conflicts_with = "context_file", value_name = "TEXT")]
    pub context: Option<String>,
    /// Context read from a file, as bytes.
    #[arg(long, value_name = "FILE")]
    pub context_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub key: KeyArg,
    #[command(flatten)]
    pub context: ContextArgs,
    /// Read the input from FILE (`-`: stdin).
    #[arg(long = "in", default_value = "-", value_name = "FILE")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct DataKeyArgs {
    #[command(flatten)]
    pub key: KeyArg,
    #[command(flatten)]
    pub context: ContextArgs,
    /// Write the 32-byte plaintext key to FILE (created with mode 0600; an existing file is
    /// refused). Without it the service is asked for the wrapped key only.
    #[arg(long, value_name = "FILE")]
    pub plaintext_key_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MacArgs {
    #[command(flatten)]
    pub key: KeyArg,
    /// Read the input from FILE (`-`: stdin).
    #[arg(long = "in", default_value = "-", value_name = "FILE")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub mac_args: MacArgs,
    /// The MAC to check (`ssm-mac:NAME:vN:...`).
    #[arg(long)]
    pub mac: String,
}

/// Exit codes, one per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// `verify`: the MAC does not match.
    Invalid = 1,
    /// Bad arguments or unreadable input (clap's own usage errors are 2 too).
    Usage = 2,
    /// 403: IAM refused the caller.
    Denied = 3,
    /// 404: no such key in this deployment.
    NotFound = 4,
    /// The API refused the request (another 4xx): a ciphertext of another key, a wrong context...
    Refused = 5,
    /// Still throttled or unavailable after every attempt.
    Unavailable = 6,
    /// No endpoint, no credentials, or the API could not be reached.
    Unreachable = 7,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failure, with the exit code and the text for stderr.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

/// Runs the command; prints errors to stderr.
pub async fn run(cli: Cli) -> ExitCode {
    if cli.verbose {
        init_logging();
    }
    let mut stdout = std::io::stdout().lock();
    match execute(cli, &mut stdout).await {
        Ok(exit) => exit.into(),
        Err(failure) => {
            let _ = stdout.flush();
            eprintln!("ssm: {}", failure.message);
            failure.exit.into()
        }
    }
}

/// Logs of this crate at debug level and others' warnings, on stderr.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("ssm_client", LevelFilter::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .try_init();
}

/// Runs the command, writing its answer to `out`.
pub async fn execute(cli: Cli, out: &mut dyn Write) -> Result<Exit, Failure> {
    let client = connect(&cli).await?;
    call(&client, cli.command, out).await
}

/// The client the options describe: endpoint, region, credentials, retries.
async fn connect(cli: &Cli) -> Result<CryptoClient, Failure> {
    let mut loader = ssm_sdk_http::sdk_config_loader();
    if let Some(profile) = &cli.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &cli.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let endpoint = endpoint(cli, &sdk).await?;
    let region = cli
        .region
        .clone()
        .or_else(|| {
            url::Url::parse(&endpoint)
                .ok()
                .and_then(|url| region_of_endpoint(&url).map(str::to_owned))
        })
        .or_else(|| sdk.region().map(|r| r.to_string()))
        .ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                "no region to sign for: pass --region or set AWS_REGION",
            )
        })?;
    let config = ClientConfig::new(&endpoint, &region)
        .map_err(|e| Failure::new(Exit::Usage, e.to_string()))?
        .with_retry(RetryPolicy {
            max_attempts: cli.max_attempts,
            ..RetryPolicy::default()
        })
        .with_timeout(Duration::from_secs(cli.timeout));
    let client = CryptoClient::from_sdk_config(config, &sdk)
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    tracing::debug!(endpoint = %client.endpoint(), region, "calling");
    Ok(client)
}

/// Calls the command's route and writes the answer to `out`.
async fn call(
    client: &CryptoClient,
    command: Command,
    out: &mut dyn Write,
) -> Result<Exit, Failure> {
    let done = |result: std::io::Result<()>| {
        result
            .map(|()| Exit::Ok)
            .map_err(|e| Failure::new(Exit::Usage, format!("writing the output: {e}")))
    };
    match command {
        Command::Encrypt(args) => {
            let (input, context) = (read_input(&args.input)?, context(&args.context)?);
            let key = client.key(&args.key.key);
            let sealed = key
                .encrypt(&input, &context)
                .await
                .map_err(|e| failure(client, &args.key.key, e))?;
            done(writeln!(out, "{}", sealed.ciphertext))
        }
        Command::Decrypt(args) => {
            let (input, context) = (read_input(&args.input)?, context(&args.context)?);
            let envelope = envelope_text(&input)?;
            let key = client.key(&args.key.key);
            let plaintext = key
                .decrypt(envelope, &context)
                .await
                .map_err(|e| failure(client, &args.key.key, e))?;
            done(
                out.write_all(plaintext.expose_secret())
                    .and_then(|()| out.flush()),
            )
        }
        Command::Rewrap(args) => {
            let (input, context) = (read_input(&args.input)?, context(&args.context)?);
            let envelope = envelope_text(&input)?;
            let key = client.key(&args.key.key);
            let sealed = key
                .rewrap(envelope, &context)
                .await
                .map_err(|e| failure(client, &args.key.key, e))?;
            done(writeln!(out, "{}", sealed.ciphertext))
        }
        Command::Datakey(args) => {
            let context = context(&args.context)?;
            // Refuse a file that exists before a key is made for it.
            let key_file = args
                .plaintext_key_out
                .as_deref()
                .map(create_secret_file)
                .transpose()?;
            let wrapped_only = key_file.is_none();
            let outcome = client
                .key(&args.key.key)
                .data_key(&context, wrapped_only)
                .await
                .map_err(|e| failure(client, &args.key.key, e))
                .and_then(|data_key| {
                    if let (Some(file), Some(path)) = (key_file, &args.plaintext_key_out) {
                        write_key(file, path, data_key.plaintext.as_ref())?;
                    }
                    Ok(data_key)
                });
            if let (Err(_), Some(path)) = (&outcome, &args.plaintext_key_out) {
                // No key was written: leave no empty key file behind either.
                let _ = std::fs::remove_file(path);
            }
            let data_key = outcome?;
            let json = serde_json::json!({
                "ciphertext": data_key.ciphertext,
                "key_version": data_key.key_version,
            });
            done(writeln!(out, "{json}"))
        }
        Command::Hmac(args) => {
            let input = read_input(&args.input)?;
            let key = client.key(&args.key.key);
            let mac = key
                .hmac(&input)
                .await
                .map_err(|e| failure(client, &args.key.key, e))?;
            done(writeln!(out, "{}", mac.mac))
        }
        Command::Verify(args) => {
            let input = read_input(&args.mac_args.input)?;
            let name = &args.mac_args.key.key;
            let valid = client
                .key(name)
                .verify(&input, args.mac.trim())
                .await
                .map_err(|e| failure(client, name, e))?;
            done(writeln!(out, "{}", if valid { "valid" } else { "invalid" }))?;
            Ok(if valid { Exit::Ok } else { Exit::Invalid })
        }
        Command::Info(args) => {
            let info = client
                .key(&args.key)
                .info()
                .await
                .map_err(|e| failure(client, &args.key, e))?;
            let json = serde_json::to_string_pretty(&info).unwrap_or_default();
            done(writeln!(out, "{json}"))
        }
    }
}

/// `--endpoint` or `--stack` (or their variables): the API's base URL.
async fn endpoint(cli: &Cli, sdk: &aws_config::SdkConfig) -> Result<String, Failure> {
    match (&cli.endpoint, &cli.stack) {
        (Some(endpoint), None) => Ok(endpoint.clone()),
        (None, Some(stack)) => stack_api_url(sdk, stack).await,
        (Some(_), Some(_)) => Err(Failure::new(
            Exit::Usage,
            "give --endpoint (SSM_ENDPOINT) or --stack (SSM_STACK), not both",
        )),
        (None, None) => Err(Failure::new(
            Exit::Usage,
            "no endpoint: pass --endpoint URL or --stack NAME (or set SSM_ENDPOINT or SSM_STACK)",
        )),
    }
}

/// The `ApiUrl` output of `stack`.
async fn stack_api_url(sdk: &aws_config::SdkConfig, stack: &str) -> Result<String, Failure> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let answer = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
            let detail = e
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| error_chain(&e));
            Failure::new(
                Exit::Unreachable,
                format!("could not read stack {stack:?} (cloudformation:DescribeStacks): {detail}"),
            )
        })?;
    answer
        .stacks()
        .iter()
        .flat_map(|s| s.outputs())
        .find(|o| o.output_key() == Some("ApiUrl"))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                format!("stack {stack:?} has no ApiUrl output: is it the SsmServerless stack?"),
            )
        })
}

/// The whole input, from a file or stdin (`-`), up to [`MAX_INPUT`].
fn read_input(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let what = if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let unreadable = |e: std::io::Error| Failure::new(Exit::Usage, format!("reading {what}: {e}"));
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(unreadable)?)
    };
    let mut input = Zeroizing::new(Vec::new());
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .map_err(unreadable)?;
    if input.len() as u64 > MAX_INPUT {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{what} is larger than {MAX_INPUT} bytes, more than the API accepts in one request"
            ),
        ));
    }
    Ok(input)
}

fn context(args: &ContextArgs) -> Result<Vec<u8>, Failure> {
    match (&args.context, &args.context_file) {
        (Some(text), _) => Ok(text.as_bytes().to_vec()),
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| Failure::new(Exit::Usage, format!("reading {}: {e}", path.display()))),
        (None, None) => Ok(Vec::new()),
    }
}

/// An envelope read as input: text, surrounding whitespace (a trailing newline) ignored.
fn envelope_text(input: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(input)
        .map(str::trim)
        .ok()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                "the input is not an envelope (expected text such as ssm2:NAME:v1:...)",
            )
        })
}

/// A new file only its owner can read; an existing one is refused, not overwritten.
fn create_secret_file(path: &Path) -> Result<std::fs::File, Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!("creating {} for the plaintext key: {e}", path.display()),
        )
    })
}

/// Writes a data key's plaintext to the file made for it.
fn write_key(
    mut file: std::fs::File,
    path: &Path,
    plaintext: Option<&crate::SecretBytes>,
) -> Result<(), Failure> {
    let plaintext = plaintext
        .ok_or_else(|| Failure::new(Exit::Refused, "the service sent no plaintext key"))?;
    file.write_all(plaintext.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::new(Exit::Usage, format!("writing {}: {e}", path.display())))
}

/// What went wrong, in the caller's terms.
fn failure(client: &CryptoClient, key: &KeyName, error: ClientError) -> Failure {
    match &error {
        ClientError::IamDenied {
            method,
            path,
            message,
        } if is_signature_problem(message) => Failure::new(
            Exit::Denied,
            format!(
                "API Gateway refused the request's SigV4 signature for {method} {path} (403: \
                 {message}): check the credentials, the region ({}) and the clock",
                client.region()
            ),
        ),
        ClientError::IamDenied {
            method,
            path,
            message,
        } => Failure::new(
            Exit::Denied,
            format!(
                "not authorized by IAM for key {key}: check your policy allows execute-api:Invoke \
                 on {} (API Gateway answered 403: {message})",
                route_arn(client, method, path)
            ),
        ),
        ClientError::NotFound { .. } => Failure::new(
            Exit::NotFound,
            format!(
                "no key named {key} in this deployment ({}): {error}",
                client.endpoint()
            ),
        ),
        ClientError::Api { .. } | ClientError::Decode { .. } => Failure::new(
            Exit::Refused,
            format!("the API refused the request: {error}"),
        ),
        ClientError::Unavailable { .. } => Failure::new(
            Exit::Unavailable,
            format!("the API is throttling or unavailable: {error}; try again later"),
        ),
        ClientError::Transport {
            method,
            path,
            attempts,
            source,
        } => Failure::new(
            Exit::Unreachable,
            format!(
                "could not reach {} ({method} {path}, {attempts} attempts): {}",
                client.endpoint(),
                error_chain(source)
            ),
        ),
        ClientError::Config(_) | ClientError::KeyName(_) => {
            Failure::new(Exit::Usage, error.to_string())
        }
        ClientError::Credentials(_) | ClientError::Signing(_) => {
            Failure::new(Exit::Unreachable, error.to_string())
        }
    }
}

/// API Gateway's 403 for a signature it could not check, rather than a policy that says no.
fn is_signature_problem(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "signature",
        "security token",
        "authentication token",
        "credential",
        "expired",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The execute-api ARN a policy must allow for this request.
fn route_arn(client: &CryptoClient, method: &str, path: &str) -> String {
    let api = api_id_of_endpoint(client.endpoint()).unwrap_or("API_ID");
    format!(
        "arn:aws:execute-api:{}:ACCOUNT:{api}/$default/{method}/{}",
        client.region(),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_refusals_are_told_apart_from_policy_denials() {
        assert!(is_signature_problem(
            "The request signature we calculated does not match the signature you provided."
        ));
        assert!(is_signature_problem(
            "The security token included in the request is invalid."
        ));
        assert!(!is_signature_problem("Forbidden"));
        assert!(!is_signature_problem(
            "User: arn:aws:iam::1:user/u is not authorized to perform: execute-api:Invoke on resource: x"
        ));
    }

    #[test]
    fn envelopes_are_trimmed_text() {
        assert_eq!(
            envelope_text(b"ssm2:a:v1:AAAA\n").ok(),
            Some("ssm2:a:v1:AAAA")
        );
        assert!(envelope_text(b" \n").is_err());
        assert!(envelope_text(&[0xff, 0xfe]).is_err());
    }
}
