//! TOML → raw struct deserialization with errors that name `file:key` or `file:line:col`.
//!
//! toml's own error only carries a byte span (its key list is private), so the
//! span is mapped back to a key path by walking the spanned document tree.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::ConfigError;

/// Parses `src` and deserializes it into `T`, naming `file` in any error.
pub(super) fn parse_document<T: DeserializeOwned>(src: &str, file: &str) -> Result<T, ConfigError> {
    let doc = DeTable::parse(src).map_err(|e| syntax_error(src, file, &e))?;
    let tree = doc.clone();
    T::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        let key = e
            .span()
            .and_then(|span| key_path_at(tree.get_ref(), span.start));
        match key {
            Some(key) => {
                let reason = reason_for(&key, e.message());
                ConfigError::invalid(file, &key, reason)
            }
            // Only reachable for errors toml could not place; the position is the best we have.
            None => {
                let (line, col) = e.span().map_or((1, 1), |s| line_col(src, s.start));
                ConfigError::Syntax {
                    file: file.to_owned(),
                    line,
                    col,
                    message: e.message().to_owned(),
                }
            }
        }
    })
}

fn syntax_error(src: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let (line, col) = e.span().map_or((1, 1), |s| line_col(src, s.start));
    ConfigError::Syntax {
        file: file.to_owned(),
        line,
        col,
        message: e.message().to_owned(),
    }
}

/// Rewords serde's messages in TOML terms and keeps password values out of them.
fn reason_for(key: &str, message: &str) -> String {
    // serde quotes the offending value; for a password that would print the secret.
    if key.ends_with("password") {
        return "must be a string".to_owned();
    }
    match message.strip_prefix("unknown field ") {
        Some(rest) => format!("unknown key {rest}"),
        None => message.to_owned(),
    }
}

/// 1-based line and character column of byte offset `pos`.
pub(super) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The key path of the smallest key or value whose span holds `pos`.
fn key_path_at(root: &DeTable<'_>, pos: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_table(root, "", pos, &mut best);
    best.map(|(_, path)| path)
}

fn walk_table(table: &DeTable<'_>, prefix: &str, pos: usize, best: &mut Option<(usize, String)>) {
    for (key, value) in table {
        let path = join_key(prefix, key.get_ref());
        consider(key.span(), &path, pos, best);
        walk_value(value, &path, pos, best);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    pos: usize,
    best: &mut Option<(usize, String)>,
) {
    consider(value.span(), path, pos, best);
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, path, pos, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, &format!("{path}[{i}]"), pos, best);
            }
        }
        _ => {}
    }
}

fn consider(span: Range<usize>, path: &str, pos: usize, best: &mut Option<(usize, String)>) {
    let hit = span.contains(&pos) || (span.is_empty() && span.start == pos);
    if !hit {
        return;
    }
    let len = span.len();
    // `<=` so that, on equal spans (an `[[array]]` header is both the array's and
    // its first element's span), the deeper path visited later wins.
    if best.as_ref().is_none_or(|(best_len, _)| len <= *best_len) {
        *best = Some((len, path.to_owned()));
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: Option<String>,
        sub: Option<Sub>,
        items: Option<Vec<Item>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sub {
        n: Option<i64>,
        password: Option<String>,
        list: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        app: Option<String>,
    }

    fn err(src: &str) -> String {
        parse_document::<Doc>(src, "t.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_key_names_full_path() {
        assert_eq!(
            err("[sub]\nn = 1\nbogus = 2\n"),
            "t.toml:sub.bogus: unknown key `bogus`, expected one of `n`, `password`, `list`"
        );
        assert_eq!(
            err("[[items]]\napp = 'a'\n[[items]]\nap = 'b'\n"),
            "t.toml:items[1].ap: unknown key `ap`, expected `app`"
        );
        assert!(err("top = 1\n").starts_with("t.toml:top: unknown key `top`"));
    }

    #[test]
    fn wrong_type_names_path() {
        assert_eq!(
            err("[sub]\nn = \"x\"\n"),
            "t.toml:sub.n: invalid type: string \"x\", expected i64"
        );
        assert_eq!(
            err("sub = { list = [\"a\", 5] }\n"),
            "t.toml:sub.list[1]: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            err("[[items]]\napp = 'a'\n[[items]]\napp = 3\n"),
            "t.toml:items[1].app: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn password_value_never_echoed() {
        let e = err("[sub]\npassword = 123456\n");
        assert_eq!(e, "t.toml:sub.password: must be a string");
    }

    #[test]
    fn syntax_error_has_line_and_col() {
        assert_eq!(
            err("name = 'x'\n[sub\n"),
            "t.toml:2:5: unclosed table, expected `]`"
        );
        let e = err("name = 'a'\nname = 'b'\n");
        assert!(e.starts_with("t.toml:2:1: duplicate key"), "{e}");
        let e = err("name = \n");
        assert!(e.starts_with("t.toml:1:8: "), "{e}");
    }

    #[test]
    fn quoted_keys_in_paths() {
        assert_eq!(join_key("a", "b c"), "a.\"b c\"");
        assert_eq!(join_key("", "x_y-z"), "x_y-z");
    }

    #[test]
    fn line_col_counts_chars_not_bytes() {
        assert_eq!(line_col("é = 1", 3), (1, 3));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("", 10), (1, 1));
    }
}
