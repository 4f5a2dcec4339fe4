//! The engine's error type: one enum, each variant saying what went wrong and with what.

use std::path::PathBuf;

/// Everything the engine can fail with. User-facing text comes from `Display`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error tagged with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
