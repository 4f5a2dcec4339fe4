//! Where a library lives (a file or a server URL), and URLs shown without their password.

use std::path::{Path, PathBuf};

/// Where a library lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// A `postgresql://` or `postgres://` URL is a PostgreSQL library; anything else a file.
    pub fn of(index: &Path) -> Self {
        let s = index.to_string_lossy();
        if s.starts_with("postgresql://") || s.starts_with("postgres://") {
            Self::Postgres(s.into_owned())
        } else {
            Self::Sqlite(index.to_path_buf())
        }
    }

    /// How to name the library to a user: a file's path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(url) => redact_url(url),
        }
    }

    /// Whether this is a file (which the writer locks) rather than a server database.
    pub fn is_file(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// `url` with any password replaced by `***` (user info `user:password@`, or a `password=`
/// query parameter).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail: Vec<String> = tail
        .split('&')
        .map(|kv| {
            let (k, _) = kv.split_once('=').unwrap_or((kv, ""));
            let key = k.trim_start_matches(['?', '/']);
            if key.eq_ignore_ascii_case("password") && kv.contains('=') {
                format!("{k}=***")
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{scheme}://{authority}{}", tail.join("&"))
}
