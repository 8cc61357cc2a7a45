//! `${VAR}` expansion, the redacting [`Secret`] wrapper, and the validation context.

use std::fmt;

use super::error::ConfigError;

/// Looks up an environment variable by name; `None` means unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A sensitive string (password) whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a sensitive value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value; call only where it is actually needed (e.g. digest computation).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in `raw`; `$${` is a literal `${`.
///
/// Expanded text is not expanded again, so a secret containing `${` stays intact.
pub(super) fn expand(raw: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated \"${\" (write \"$${\" for a literal)".to_owned())?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(format!(
                    "invalid environment variable name {name:?} in \"${{...}}\""
                ));
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Per-file validation state: file name for errors, env lookup, collected warnings.
pub(super) struct Ctx<'a> {
    pub(super) file: String,
    env: EnvLookup<'a>,
    pub(super) warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: impl Into<String>, env: EnvLookup<'a>) -> Self {
        Self {
            file: file.into(),
            env,
            warnings: Vec::new(),
        }
    }

    /// An error about `key` in this file.
    pub(super) fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(&self.file, key, reason)
    }

    /// Records a `file:key: message` warning.
    pub(super) fn warn(&mut self, key: &str, message: impl fmt::Display) {
        self.warnings
            .push(format!("{}:{key}: {message}", self.file));
    }

    /// Expands env references in a string value.
    pub(super) fn expand(&self, key: &str, raw: &str) -> Result<String, ConfigError> {
        expand(raw, self.env).map_err(|reason| self.err(key, reason))
    }

    /// An optional string; a value that expands to empty counts as absent.
    pub(super) fn opt_str(
        &self,
        key: &str,
        raw: Option<&str>,
    ) -> Result<Option<String>, ConfigError> {
        match raw {
            None => Ok(None),
            Some(raw) => {
                let v = self.expand(key, raw)?;
                Ok(if v.is_empty() { None } else { Some(v) })
            }
        }
    }

    /// A required, non-empty string.
    pub(super) fn req_str(&self, key: &str, raw: Option<&str>) -> Result<String, ConfigError> {
        match raw {
            None => Err(self.err(key, "is required")),
            Some(raw) => {
                let v = self.expand(key, raw)?;
                if v.is_empty() {
                    Err(self.err(key, "must not be empty"))
                } else {
                    Ok(v)
                }
            }
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub(super) fn int<T>(
        &self,
        key: &str,
        raw: Option<i64>,
        default: T,
        min: i64,
        max: i64,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<i64>,
    {
        let Some(v) = raw else {
            return Ok(default);
        };
        if v < min {
            return Err(self.err(key, format!("must be >= {min}, got {v}")));
        }
        if v > max {
            return Err(self.err(key, format!("must be <= {max}, got {v}")));
        }
        T::try_from(v).map_err(|_| self.err(key, format!("out of range, got {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PW" => Some("s3cr$t".into()),
            "HOST" => Some("sip.example.com".into()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("${PW}".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_whole_and_embedded_references() {
        assert_eq!(expand("${PW}", &env).unwrap(), "s3cr$t");
        assert_eq!(
            expand("sip:${HOST}:5060", &env).unwrap(),
            "sip:sip.example.com:5060"
        );
        assert_eq!(
            expand("${HOST}/${PW}", &env).unwrap(),
            "sip.example.com/s3cr$t"
        );
        assert_eq!(expand("no refs", &env).unwrap(), "no refs");
        assert_eq!(expand("", &env).unwrap(), "");
    }

    #[test]
    fn dollar_without_brace_and_escape_are_literal() {
        assert_eq!(expand("a$b$", &env).unwrap(), "a$b$");
        assert_eq!(expand("$${PW}", &env).unwrap(), "${PW}");
        assert_eq!(expand("x$$y", &env).unwrap(), "x$$y");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(expand("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${NOPE:-}", &env).unwrap(), "");
        assert_eq!(expand("${HOST:-x}", &env).unwrap(), "sip.example.com");
    }

    #[test]
    fn expansion_is_not_recursive() {
        assert_eq!(expand("${TRICKY}", &env).unwrap(), "${PW}");
    }

    #[test]
    fn expansion_errors() {
        assert_eq!(
            expand("${NOPE}", &env).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert_eq!(
            expand("${PW", &env).unwrap_err(),
            "unterminated \"${\" (write \"$${\" for a literal)"
        );
        assert_eq!(
            expand("${1X}", &env).unwrap_err(),
            "invalid environment variable name \"1X\" in \"${...}\""
        );
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn ctx_helpers() {
        let ctx = Ctx::new("f.toml", &env);
        assert_eq!(ctx.opt_str("k", Some("${EMPTY}")).unwrap(), None);
        assert_eq!(
            ctx.req_str("k", None).unwrap_err().to_string(),
            "f.toml:k: is required"
        );
        assert_eq!(
            ctx.req_str("k", Some("${EMPTY}")).unwrap_err().to_string(),
            "f.toml:k: must not be empty"
        );
        assert_eq!(ctx.int::<u16>("p", None, 7, 0, 10).unwrap(), 7);
        assert_eq!(
            ctx.int::<u16>("p", Some(11), 7, 0, 10)
                .unwrap_err()
                .to_string(),
            "f.toml:p: must be <= 10, got 11"
        );
        assert_eq!(
            ctx.int::<u16>("p", Some(-1), 7, 0, 10)
                .unwrap_err()
                .to_string(),
            "f.toml:p: must be >= 0, got -1"
        );
    }
}
