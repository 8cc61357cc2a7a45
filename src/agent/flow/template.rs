//! Prompt and tool-argument templates: text with `{name}` and `{name|default}` placeholders.
//!
//! A name is a flow variable (`company`), a slot (`when`) or a lead field (`lead.first_name`);
//! `{{` and `}}` are literal braces. Values are inserted as text and never re-parsed, so a
//! lead's name cannot inject placeholders.

use std::collections::BTreeMap;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    /// Literal text and placeholders, in order.
    pieces: Vec<Piece>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text copied as is.
    Text(String),
    /// A value looked up by name, with the text used when it is unset or empty.
    Slot {
        /// `company`, `when`, `lead.first_name`.
        name: String,
        /// Fallback text.
        default: Option<String>,
    },
}

/// The values a template can use while rendering.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// Flow variables (templates themselves).
    pub vars: &'a BTreeMap<String, Template>,
    /// Slots captured so far.
    pub slots: &'a BTreeMap<String, String>,
    /// The lead's fields.
    pub lead: &'a BTreeMap<String, String>,
}

/// Variables may use variables; this bounds the depth (cycles are rejected at load).
const MAX_DEPTH: usize = 8;

impl Template {
    /// Parses `src`, failing on an unclosed `{`, a stray `}` or a malformed name.
    pub fn parse(src: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err("stray '}' (write '}}' for a literal brace)".to_owned()),
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err("unclosed '{' (write '{{' for a literal brace)".to_owned());
                    }
                    let (name, default) = match inner.split_once('|') {
                        Some((n, d)) => (n.trim(), Some(d.to_owned())),
                        None => (inner.trim(), None),
                    };
                    if !is_name(name) {
                        return Err(format!("bad placeholder {{{inner}}}"));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Slot {
                        name: name.to_owned(),
                        default,
                    });
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self { pieces })
    }

    /// The placeholder names used, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Slot { name, .. } => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Whether the template has no placeholders.
    pub fn is_literal(&self) -> bool {
        self.names().next().is_none()
    }

    /// The text with every placeholder filled (unset and no default: empty), spaces tidied.
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        self.render_into(values, &mut out, 0);
        tidy(&out)
    }

    fn render_into(&self, values: &Values<'_>, out: &mut String, depth: usize) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot { name, default } => {
                    let before = out.len();
                    if let Some(field) = name.strip_prefix("lead.") {
                        out.push_str(values.lead.get(field).map_or("", String::as_str));
                    } else if let Some(v) = values.slots.get(name) {
                        out.push_str(v);
                    } else if let Some(var) = values.vars.get(name)
                        && depth < MAX_DEPTH
                    {
                        var.render_into(values, out, depth + 1);
                    }
                    if out[before..].trim().is_empty() {
                        out.truncate(before);
                        out.push_str(default.as_deref().unwrap_or(""));
                    }
                }
            }
        }
    }
}

/// Collapses runs of spaces and removes a space before `,.?!` (left by an empty value).
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        if matches!(c, ',' | '.' | '?' | '!') && out.ends_with(' ') {
            out.pop();
        }
        out.push(c);
    }
    out
}

fn is_name(name: &str) -> bool {
    let field = name.strip_prefix("lead.").unwrap_or(name);
    !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_vars_slots_and_lead_fields() {
        let vars: BTreeMap<String, Template> = [
            ("company", "Bright Solar"),
            (
                "disclosure",
                "Hi, this is an automated assistant calling on behalf of {company}.",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Template::parse(v).unwrap()))
        .collect();
        let slots = map(&[("when", "tomorrow morning")]);
        let lead = map(&[("first_name", "Jane {company}")]);
        let values = Values {
            vars: &vars,
            slots: &slots,
            lead: &lead,
        };
        let t = Template::parse("{disclosure} Is this {lead.first_name}? {{ok}} {when}").unwrap();
        assert_eq!(
            t.render(&values),
            "Hi, this is an automated assistant calling on behalf of Bright Solar. Is this Jane {company}? {ok} tomorrow morning"
        );
        let t = Template::parse("Hello {lead.last_name|there}, {lead.nick}!").unwrap();
        assert_eq!(t.render(&values), "Hello there,!");
        assert_eq!(
            t.names().collect::<Vec<_>>(),
            ["lead.last_name", "lead.nick"]
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["{unclosed", "stray }", "{}", "{a b}", "{lead.}", "{x-y}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn self_reference_terminates() {
        let vars: BTreeMap<String, Template> =
            [("a".to_owned(), Template::parse("x{a}").unwrap())].into();
        let empty = BTreeMap::new();
        let values = Values {
            vars: &vars,
            slots: &empty,
            lead: &empty,
        };
        assert_eq!(
            Template::parse("{a}").unwrap().render(&values),
            "x".repeat(8)
        );
    }
}
