//! AFL++ entry point: `ssm-fuzz-afl <target>`, built by `cargo afl build --features afl`
//! (see `bench/fuzz.sh`). Outside afl-fuzz it runs the one input on standard input, which is how
//! a crash is reproduced: `ssm-fuzz-afl envelope < crash-file`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = ssm_fuzz::target(&name) else {
        let names: Vec<&str> = ssm_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: ssm-fuzz-afl <{}>", names.join("|"));
        return ExitCode::from(2);
    };
    afl::fuzz!(|data: &[u8]| (target.run)(data));
    ExitCode::SUCCESS
}
