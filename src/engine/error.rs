//! The engine's error type: one enum, each variant saying what went wrong and with what.

use std::path::PathBuf;

/// Everything the engine can fail with. User-facing text comes from `Display`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The I/O error's text is part of the message and not also its `source`, so a chain
    // printed with `{:#}` does not say it twice.
    // (Not named `source`: thiserror would make a field of that name the error's source.)
    #[error("{}", io_message(path, io))]
    Io { path: PathBuf, io: std::io::Error },
    #[error("cannot decode image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{0}")]
    Weights(String),
    #[error("{0}")]
    Index(String),
    #[error("{0}")]
    Table(String),
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("model error: {0}")]
    Model(#[from] candle_core::Error),
    #[error("cancelled")]
    Cancelled,
}

/// What an I/O failure on `path` means, in words ("… does not exist", not "os error 2").
fn io_message(path: &std::path::Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let p = path.display();
    match e.kind() {
        ErrorKind::NotFound => format!("{p} does not exist"),
        ErrorKind::PermissionDenied => format!("{p}: permission denied"),
        ErrorKind::IsADirectory => format!("{p} is a folder, not a file"),
        _ => {
            let text = e.to_string();
            // "No such device (os error 19)" -> "No such device".
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("cannot read or write {p}: {text}")
        }
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error tagged with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            io: source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_say_what_happened_once() {
        let missing = std::fs::read("/nonexistent/q.png").expect_err("missing");
        let e = anyhow::Error::from(Error::io("/nonexistent/q.png", missing));
        let text = format!("{e:#}");
        assert_eq!(text, "/nonexistent/q.png does not exist");
        let folder = std::fs::read("/").expect_err("folder");
        let text = Error::io("/", folder).to_string();
        assert!(!text.contains("os error"), "{text}");
    }
}
