//! Log capture for the tests that prove secrets never reach the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// A shared in-memory log sink.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();

/// Installs, once per test binary, a global TRACE subscriber (every crate, every thread, plain
/// text) writing into the returned buffer.
pub fn global() -> &'static LogBuffer {
    GLOBAL.get_or_init(|| {
        let buffer = LogBuffer::default();
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .try_init();
        buffer
    })
}

/// Captures, as JSON lines, what the current thread logs while the guard lives (for tests on
/// a current-thread runtime that assert on structured fields).
pub fn capture_thread() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let buffer = LogBuffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}
