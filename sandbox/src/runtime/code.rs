//! How a function's code is unpacked: the `bootstrap` of its Lambda zip, within Lambda's size
//! limit, put in place without disturbing a process still running the previous one.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Lambda's limit on the unzipped size of a function's code.
const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

/// Extracts the `bootstrap` entry of a Lambda zip to `dir/bootstrap`, mode 0755.
///
/// The file is written beside and renamed into place, so a process still running the previous
/// `dir/bootstrap` keeps its code.
pub fn extract_bootstrap(zip: &[u8], dir: &Path) -> anyhow::Result<PathBuf> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .context("the Lambda code is not a readable zip archive")?;
    if archive.index_for_name("bootstrap").is_none() {
        let names: Vec<String> = archive
            .file_names_raw()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        anyhow::bail!("the Lambda zip has no `bootstrap` entry (entries: {names:?})");
    }
    let mut entry = archive
        .by_name("bootstrap")
        .context("reading `bootstrap` from the Lambda zip")?;
    anyhow::ensure!(
        entry.is_file(),
        "`bootstrap` in the Lambda zip is not a regular file"
    );
    anyhow::ensure!(
        entry.size() <= MAX_UNZIPPED_BYTES,
        "`bootstrap` unzips to {} bytes, over Lambda's {MAX_UNZIPPED_BYTES}",
        entry.size()
    );
    let mut code = Vec::new();
    entry
        .by_ref()
        .take(MAX_UNZIPPED_BYTES + 1)
        .read_to_end(&mut code)
        .context("inflating `bootstrap` from the Lambda zip")?;
    anyhow::ensure!(
        code.len() as u64 <= MAX_UNZIPPED_BYTES,
        "`bootstrap` unzips to more than Lambda's {MAX_UNZIPPED_BYTES} bytes"
    );

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join("bootstrap");
    let partial = dir.join(format!(".bootstrap.{}", uuid::Uuid::new_v4().simple()));
    write_executable(&partial, &code)
        .and_then(|()| std::fs::rename(&partial, &target))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(target)
}

fn write_executable(path: &Path, code: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?;
    file.write_all(code)?;
    // The mode given at creation is filtered by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}
