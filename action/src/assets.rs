//! File assets: deterministic packaging and upload to the bootstrap bucket, skipping objects
//! that are already there (asset keys are content hashes, so present means identical).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use ssm_core::deploy::assembly::{self, FileAsset, Packaging, Placeholders};

use crate::clients::RoleClients;

/// A zip of `dir` that depends only on the files' relative paths, contents and executable bits:
/// entries sorted by path, timestamps fixed at 1980-01-01, permissions 0644 or 0755.
pub fn deterministic_zip(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files).with_context(|| format!("reading {}", dir.display()))?;
    files.sort();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, path) in files {
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let mode = if is_executable(&meta) { 0o755 } else { 0o644 };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(mode)
            .large_file(meta.len() >= u64::from(u32::MAX));
        zip.start_file(name, options)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        zip.write_all(&bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Lambda's `CodeSha256`: base64 of the SHA-256 of the zip.
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// The bytes an asset uploads.
pub fn package(assembly_dir: &Path, asset: &FileAsset) -> anyhow::Result<Vec<u8>> {
    let path = assembly_dir.join(&asset.path);
    match asset.packaging {
        Packaging::File => std::fs::read(&path)
            .with_context(|| format!("reading asset {} ({})", asset.id, path.display())),
        Packaging::Zip if path.is_dir() => deterministic_zip(&path),
        // CDK stages an already-zipped archive as a `zip` asset pointing at the file itself.
        Packaging::Zip => std::fs::read(&path)
            .with_context(|| format!("reading asset {} ({})", asset.id, path.display())),
    }
}

/// Reads every asset manifest a stack names.
pub fn load_assets(assembly_dir: &Path, manifests: &[String]) -> anyhow::Result<Vec<FileAsset>> {
    let mut all = Vec::new();
    for file in manifests {
        let path = assembly_dir.join(file);
        let json = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        all.extend(assembly::parse_assets(file, &json)?);
    }
    Ok(all)
}

/// Counts of a publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub uploaded: usize,
    pub skipped: usize,
}

/// Uploads each asset to each destination unless the object is there already.
pub async fn publish(
    assembly_dir: &Path,
    assets: &[FileAsset],
    placeholders: &Placeholders,
    roles: &RoleClients,
) -> anyhow::Result<Published> {
    let mut counts = Published::default();
    let mut packaged: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for asset in assets {
        for dest in &asset.destinations {
            let bucket = placeholders.fill(&dest.bucket);
            let key = placeholders.fill(&dest.key);
            let role = dest
                .assume_role_arn
                .as_deref()
                .map(|r| placeholders.fill(r));
            let s3 = roles.for_role(role.as_deref()).await.s3;
            let listed = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&key)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(se) if se.is_no_such_bucket() => anyhow::anyhow!(
                        "the asset bucket {bucket} does not exist: bootstrap the environment with `cdk bootstrap aws://{}/{}`",
                        placeholders.account,
                        placeholders.region
                    ),
                    _ => anyhow::anyhow!("listing s3://{bucket}/{key}: {}", crate::aws_error(&e)),
                })?;
            if listed
                .contents()
                .iter()
                .any(|o| o.key() == Some(key.as_str()))
            {
                tracing::info!(asset = %asset.id, %bucket, %key, "asset already published");
                counts.skipped += 1;
                continue;
            }
            let bytes = match packaged.get(asset.id.as_str()) {
                Some(b) => b.clone(),
                None => {
                    let b = package(assembly_dir, asset)?;
                    packaged.insert(asset.id.as_str(), b.clone());
                    b
                }
            };
            let size = bytes.len();
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(ByteStream::from(bytes))
                .content_type(match asset.packaging {
                    Packaging::Zip => "application/zip",
                    Packaging::File if key.ends_with(".json") => "application/json",
                    Packaging::File => "application/octet-stream",
                })
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "uploading asset {} to s3://{bucket}/{key}: {}",
                        asset.id,
                        crate::aws_error(&e)
                    )
                })?;
            tracing::info!(asset = %asset.id, %bucket, %key, bytes = size, "asset uploaded");
            counts.uploaded += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("bootstrap"), b"#!/bin/true\n").unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"alpha").unwrap();
        std::fs::write(dir.join("sub/deeper/b.txt"), b"beta").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.join("bootstrap"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
    }

    #[test]
    fn zips_are_byte_identical_across_trees_and_times() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        tree(b.path());
        let za = deterministic_zip(a.path()).unwrap();
        let zb = deterministic_zip(b.path()).unwrap();
        assert_eq!(za, zb);
        assert_eq!(code_sha256(&za), code_sha256(&zb));

        let archive = zip::ZipArchive::new(std::io::Cursor::new(za)).unwrap();
        let names: Vec<_> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names, ["bootstrap", "sub/a.txt", "sub/deeper/b.txt"]);
    }

    #[test]
    fn content_and_mode_changes_change_the_zip() {
        let a = tempfile::tempdir().unwrap();
        tree(a.path());
        let before = deterministic_zip(a.path()).unwrap();
        std::fs::write(a.path().join("sub/a.txt"), b"alphA").unwrap();
        let after = deterministic_zip(a.path()).unwrap();
        assert_ne!(before, after);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(after)).unwrap();
            assert_eq!(
                archive
                    .by_name("bootstrap")
                    .unwrap()
                    .unix_mode()
                    .map(|m| m & 0o777),
                Some(0o755)
            );
            assert_eq!(
                archive
                    .by_name("sub/a.txt")
                    .unwrap()
                    .unix_mode()
                    .map(|m| m & 0o777),
                Some(0o644)
            );
            std::fs::set_permissions(
                a.path().join("bootstrap"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            let reexec = deterministic_zip(a.path()).unwrap();
            assert_ne!(reexec, deterministic_zip_with_exec(a.path()));
        }
    }

    #[cfg(unix)]
    fn deterministic_zip_with_exec(dir: &Path) -> Vec<u8> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        deterministic_zip(dir).unwrap()
    }

    #[test]
    fn code_sha256_is_base64_of_sha256() {
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
