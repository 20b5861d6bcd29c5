//! File assets: deterministic packaging and upload to the bootstrap bucket. An object already
//! there is compared byte for byte with the commit's build: its key is a content hash, but anyone
//! who can write to the bucket can put other bytes under it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use ssm_core::deploy::TamperedAsset;
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

/// Every asset of a stack, packaged once: the bytes publishing compares and uploads, and the code
/// reconcile restores (the commit's build, never the bucket's copy).
#[derive(Debug, Default)]
pub struct Packaged(BTreeMap<String, Vec<u8>>);

impl Packaged {
    pub fn build(assembly_dir: &Path, assets: &[FileAsset]) -> anyhow::Result<Self> {
        let mut out = BTreeMap::new();
        for asset in assets {
            if !out.contains_key(&asset.id) {
                out.insert(asset.id.clone(), package(assembly_dir, asset)?);
            }
        }
        Ok(Packaged(out))
    }

    /// The bytes of the asset `id`.
    pub fn get(&self, id: &str) -> anyhow::Result<&[u8]> {
        self.0
            .get(id)
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow::anyhow!("asset {id} is not in the cloud assembly"))
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

/// Hex SHA-256, as the tampering report shows it.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a publish did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub uploaded: usize,
    /// Present with the commit's bytes.
    pub skipped: usize,
    /// Present with other bytes: overwritten with the commit's (and counted in `uploaded`).
    pub tampered: Vec<TamperedAsset>,
}

/// What the bucket holds under a key.
enum Existing {
    Absent,
    Same,
    Different(String),
}

/// Reads the object and compares its bytes with the commit's. The bytes, not metadata: an ETag,
/// a checksum header or user metadata are whatever the last writer made them, so only the content
/// itself tells that the object is the one this commit builds.
async fn existing(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    local: &[u8],
    placeholders: &Placeholders,
) -> anyhow::Result<Existing> {
    let object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) => {
            return match e.as_service_error() {
                Some(se) if se.is_no_such_key() => Ok(Existing::Absent),
                _ if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchBucket") => {
                    Err(anyhow::anyhow!(
                        "the asset bucket {bucket} does not exist: bootstrap the environment with `cdk bootstrap aws://{}/{}`",
                        placeholders.account,
                        placeholders.region
                    ))
                }
                _ => Err(anyhow::anyhow!(
                    "reading s3://{bucket}/{key}: {}",
                    crate::aws_error(&e)
                )),
            };
        }
    };
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {e}"))?
        .into_bytes();
    Ok(if bytes.as_ref() == local {
        Existing::Same
    } else {
        Existing::Different(hex_sha256(&bytes))
    })
}

/// Uploads each asset to each destination. An object already there is kept only when its bytes
/// are the commit's; other bytes are tampering: overwritten, annotated and reported.
pub async fn publish(
    assets: &[FileAsset],
    packaged: &Packaged,
    placeholders: &Placeholders,
    roles: &RoleClients,
) -> anyhow::Result<Published> {
    let mut counts = Published::default();
    for asset in assets {
        let bytes = packaged.get(&asset.id)?;
        for dest in &asset.destinations {
            let bucket = placeholders.fill(&dest.bucket);
            let key = placeholders.fill(&dest.key);
            let role = dest
                .assume_role_arn
                .as_deref()
                .map(|r| placeholders.fill(r));
            let s3 = roles.for_role(role.as_deref()).await.s3;
            match existing(&s3, &bucket, &key, bytes, placeholders).await? {
                Existing::Same => {
                    tracing::info!(asset = %asset.id, %bucket, %key, "asset already published, same bytes");
                    counts.skipped += 1;
                    continue;
                }
                Existing::Absent => {}
                Existing::Different(found) => {
                    let tampered = TamperedAsset {
                        asset_id: asset.id.clone(),
                        bucket: bucket.clone(),
                        key: key.clone(),
                        expected_sha256: hex_sha256(bytes),
                        found_sha256: found,
                    };
                    let (title, message) = tampered.annotation();
                    crate::runner::error(&title, &message);
                    tracing::error!(asset = %asset.id, %bucket, %key, found = %tampered.found_sha256, "asset object tampered with; overwriting it with the commit's bytes");
                    counts.tampered.push(tampered);
                }
            }
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(ByteStream::from(bytes.to_vec()))
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
            tracing::info!(asset = %asset.id, %bucket, %key, bytes = bytes.len(), "asset uploaded");
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
