//! The Dockerfile as GitHub and the release workflow use it, checked without a Docker engine:
//! parsed into stages, the Action's stage (the last one, which `image: Dockerfile` builds) runs as
//! root on distroless with the binary as its exec-form entrypoint, the App's stays non-root, and
//! every build stage's `cargo build` names a workspace package, binary and profile that exist.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test of a fixed file: fail loudly"
)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// One instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    body: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        self.body
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.args.as_str())
    }
}

/// The instructions of a Dockerfile: comments and blank lines dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                pending.clear();
            }
        }
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    out
}

/// Global `ARG`s (before the first `FROM`) and the stages.
fn parse(text: &str) -> (Vec<(String, String)>, Vec<Stage>) {
    let mut args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions(text) {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                [_] => None,
                other => panic!("unexpected FROM form: {other:?}"),
            };
            stages.push(Stage {
                base: words[0].to_owned(),
                name,
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(i);
        } else if i.keyword == "ARG" {
            let (k, v) = i.args.split_once('=').unwrap_or((&i.args, ""));
            args.push((k.to_owned(), v.to_owned()));
        }
    }
    (args, stages)
}

fn dockerfile() -> (Vec<(String, String)>, Vec<Stage>) {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    parse(&text)
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no stage named {name}"))
}

/// A distroless image reference that runs as root: distroless's default user is root; its
/// `nonroot` variants (tags `nonroot`, `debug-nonroot`, `latest-nonroot`...) switch to uid 65532,
/// and its `debug` variants add a shell.
fn is_distroless_root(image: &str) -> bool {
    let name = image.split_once('@').map_or(image, |(name, _digest)| name);
    let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    repo.starts_with("gcr.io/distroless/") && !tag.contains("nonroot") && !tag.contains("debug")
}

/// An exec-form ENTRYPOINT's argv (a JSON array); `None` for shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    serde_json::from_str(args).ok()
}

#[test]
fn the_parser_sees_what_docker_sees() {
    let (args, stages) = parse(
        "# syntax=docker/dockerfile:1\nARG V=1\nFROM a:1 AS one\nRUN x \\\n  && y\n# c\nUSER 5\n\nFROM scratch\nentrypoint [\"/b\"]\n",
    );
    assert_eq!(args, [("V".to_owned(), "1".to_owned())]);
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("one"));
    assert_eq!(stages[0].all("RUN").collect::<Vec<_>>(), ["x && y"]);
    assert_eq!(stages[0].all("USER").count(), 1);
    assert_eq!(stages[1].base, "scratch");
    assert_eq!(
        exec_form(stages[1].all("ENTRYPOINT").next().unwrap()),
        Some(vec!["/b".to_owned()])
    );
    assert_eq!(exec_form("/b --flag"), None);

    assert!(is_distroless_root("gcr.io/distroless/cc-debian12"));
    assert!(is_distroless_root("gcr.io/distroless/cc-debian12:latest"));
    assert!(is_distroless_root(
        "gcr.io/distroless/cc-debian12@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    ));
    assert!(!is_distroless_root("gcr.io/distroless/cc-debian12:nonroot"));
    assert!(!is_distroless_root(
        "gcr.io/distroless/cc-debian12:nonroot@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    ));
    assert!(!is_distroless_root("gcr.io/distroless/cc-debian12:debug"));
    assert!(!is_distroless_root("debian:12"));
}

#[test]
fn the_action_is_the_last_stage_and_runs_as_root_on_distroless() {
    let (_, stages) = dockerfile();
    let action = stages.last().unwrap();
    assert_eq!(
        action.name.as_deref(),
        Some("action"),
        "GitHub builds the last stage for `image: Dockerfile`"
    );
    assert!(
        is_distroless_root(&action.base),
        "the Action's base must be a root distroless variant, not {}",
        action.base
    );
    assert_eq!(
        action.all("USER").collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "GitHub requires container actions to run as the default user (root): no USER"
    );
    let entrypoints: Vec<&str> = action.all("ENTRYPOINT").collect();
    assert_eq!(entrypoints.len(), 1);
    let argv = exec_form(entrypoints[0]).expect("exec-form ENTRYPOINT (a shell drops INPUT_A-B)");
    let copied: Vec<&str> = action.all("COPY").collect();
    assert!(
        copied.iter().any(|c| c.ends_with(&format!(" {}", argv[0]))),
        "the entrypoint {} is not what the stage copies in: {copied:?}",
        argv[0]
    );
}

#[test]
fn the_app_image_stays_non_root() {
    let (_, stages) = dockerfile();
    let app = stage(&stages, "app");
    assert!(app.base.contains(":nonroot"), "{}", app.base);
    let users: Vec<&str> = app.all("USER").collect();
    let last = users.last().expect("the App stage sets a USER");
    let uid = last.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "the App runs as {last}");
}

/// Workspace packages and their binary targets, from `cargo metadata`.
fn workspace_bins() -> (Vec<(String, Vec<String>)>, Option<String>) {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let bins = packages
        .iter()
        .map(|p| {
            let bins = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), bins)
        })
        .collect();
    let rust_version = packages
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME"))
        .and_then(|p| p["rust_version"].as_str())
        .map(str::to_owned);
    (bins, rust_version)
}

#[test]
fn build_stages_build_workspace_binaries_that_the_images_run() {
    let (args, stages) = dockerfile();
    let (packages, rust_version) = workspace_bins();
    let profiles = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let toolchain = args
        .iter()
        .find(|(k, _)| k == "RUST_VERSION")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        toolchain,
        rust_version.as_deref(),
        "the image's Rust must be the workspace's rust-version"
    );

    for (image, build) in [("app", "build-app"), ("action", "build-action")] {
        let runs: Vec<&str> = stage(&stages, build).all("RUN").collect();
        assert_eq!(runs.len(), 1, "{build}: {runs:?}");
        let words: Vec<&str> = runs[0].split_whitespace().collect();
        let flag = |name: &str| words.windows(2).find(|w| w[0] == name).map(|w| w[1]);
        let package =
            flag("-p").unwrap_or_else(|| panic!("{build} builds no `-p <package>`: {}", runs[0]));
        assert!(
            runs[0].starts_with("cargo build ") && words.contains(&"--locked"),
            "{build}: {}",
            runs[0]
        );
        // `--release` builds into target/release, `--profile <name>` into target/<name>.
        let out_dir = match flag("--profile") {
            Some(profile) => {
                assert!(
                    profiles.contains(&format!("[profile.{profile}]")),
                    "{build} uses a profile the workspace does not define: {profile}"
                );
                profile
            }
            None if words.contains(&"--release") => "release",
            None => panic!("{build} builds without optimisation: {}", runs[0]),
        };
        let bins = &packages
            .iter()
            .find(|(name, _)| name == package)
            .unwrap_or_else(|| panic!("{build} builds {package}, not a workspace package"))
            .1;
        // `install -D -m 0755 target/<dir>/<bin> /out/<bin>`, then the image copies /out/<bin>.
        let built = words
            .iter()
            .find_map(|w| w.strip_prefix(&format!("target/{out_dir}/")))
            .unwrap_or_else(|| panic!("{build} installs nothing from target/{out_dir}"));
        assert!(
            bins.iter().any(|b| b == built),
            "{package} has no binary {built}: {bins:?}"
        );
        let installed = *words.last().unwrap();
        assert_eq!(installed, format!("/out/{built}"));
        let copy = format!("--from={build} {installed} ");
        assert!(
            stage(&stages, image)
                .all("COPY")
                .any(|c| c.starts_with(&copy)),
            "{image} does not copy {installed} from {build}"
        );
    }
}
