//! Replays the committed corpus (`fuzz/corpus/<target>/`) through every target, then a few
//! thousand deterministic mutations of its hand-written seeds (not of the `cmin-*` files that
//! AFL++ runs added): the fuzz targets' properties as a plain `cargo test`, and every past finding
//! kept as a regression test.

#![expect(
    clippy::panic,
    reason = "a test fails by panicking, with the target and input named"
)]

use std::path::{Path, PathBuf};

use ssm_fuzz::{TARGETS, Target};

/// Mutations per corpus file: a few seconds for all targets in a debug build.
const MUTATIONS_PER_FILE: usize = 150;

fn corpus(target: &Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target.name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

/// Inputs that `SSM_FUZZ_MERGE=1 bench/fuzz.sh` added (a minimized AFL++ queue).
fn is_generated(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("cmin-"))
}

#[test]
fn every_target_has_a_corpus_and_passes_it() {
    for target in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "{} has no corpus", target.name);
        for (path, data) in &files {
            if std::panic::catch_unwind(|| (target.run)(data)).is_err() {
                panic!("{} failed on {}", target.name, path.display());
            }
        }
    }
}

/// xorshift64*: a fixed sequence, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or_default()
    }
}

/// One to four byte flips, insertions, deletions or splices from another corpus file.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\0\x7f\xff{}[]\":,0-9aAzZ=/+\\ \n";
    let mut out = data.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            _ => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(32)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
    out
}

#[test]
fn mutated_corpus_keeps_every_property() {
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    for target in TARGETS {
        let files = corpus(target);
        let seeds = files.iter().filter(|(path, _)| !is_generated(path));
        for (_, data) in seeds {
            for _ in 0..MUTATIONS_PER_FILE {
                let other = &files[rng.below(files.len())].1;
                let input = mutate(&mut rng, data, other);
                if std::panic::catch_unwind(|| (target.run)(&input)).is_err() {
                    panic!(
                        "{} failed on a mutated input; add it to the corpus: {:?}",
                        target.name,
                        String::from_utf8_lossy(&input)
                    );
                }
            }
        }
    }
}
