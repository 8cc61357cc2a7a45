//! The single error type of the configuration module.

/// A configuration load failure, always naming the file and, when there is one, the key.
///
/// Display forms: `file:key: reason` for invalid values, unknown keys and missing
/// environment variables; `file:line:col: message` for TOML syntax errors;
/// `file: reason` when the file itself cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or directory could not be read.
    #[error("{file}: {source}")]
    Io {
        /// Path of the file or directory, as given.
        file: String,
        /// The underlying I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        /// Path of the file, as given.
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        col: usize,
        /// What the TOML parser expected.
        message: String,
    },
    /// A key is unknown, has the wrong type or fails validation.
    #[error("{file}:{key}: {reason}")]
    Invalid {
        /// Path of the file, as given.
        file: String,
        /// Dotted key path, e.g. `routes[2].app` (array indexes are 0-based).
        key: String,
        /// Why the value was rejected.
        reason: String,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::Io { file, .. } | Self::Syntax { file, .. } | Self::Invalid { file, .. } => file,
        }
    }

    /// The dotted key path, for errors about a specific key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    pub(super) fn invalid(file: &str, key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = ConfigError::invalid("a.toml", "rtp.port_min", "must be even");
        assert_eq!(e.to_string(), "a.toml:rtp.port_min: must be even");
        assert_eq!(e.key(), Some("rtp.port_min"));
        assert_eq!(e.file(), "a.toml");

        let e = ConfigError::Syntax {
            file: "a.toml".into(),
            line: 3,
            col: 7,
            message: "unclosed table".into(),
        };
        assert_eq!(e.to_string(), "a.toml:3:7: unclosed table");
        assert_eq!(e.key(), None);

        let e = ConfigError::Io {
            file: "missing.toml".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        assert_eq!(e.to_string(), "missing.toml: not found");
    }
}
