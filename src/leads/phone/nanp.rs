//! The fast path of `normalize_phone` for the shape lead files mostly hold: a NANP number
//! (country code 1) written as ten digits in the usual groupings, e.g. `(415) 555-2671`,
//! `415.555.2671`, `1 415 555 2671`, `+1-415-555-2671`.
//!
//! The digits are read by a small exact grammar instead of `phonenumber::parse`, and the
//! validity and region are decided with the crate's own metadata (the same patterns, the same
//! region order, the same rules as its `is_valid` and `country().id()`), compiled once here:
//! the crate's regex cache takes a global mutex and hashes the (kilobyte-long) pattern text
//! on every match, which was most of the import's time. Anything outside the grammar returns
//! `None` and takes the crate's path. `tests::nanp_fast_path_matches_the_crate` checks the two
//! agree on random, edge-case and invalid inputs.

use std::sync::OnceLock;

use phonenumber::metadata::{DATABASE, Descriptor};
use regex::Regex;

use super::{E164, PhoneError, Region};

/// One descriptor pattern of the metadata, as `phonenumber::metadata::Descriptor::is_match`
/// applies it: a length filter, then a match that must start at the first digit.
struct Pattern {
    regex: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn new(d: &Descriptor) -> Option<Pattern> {
        Some(Pattern {
            regex: compile(d.national_number().as_str())?,
            lengths: d.possible_length().to_vec(),
        })
    }

    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && starts_match(&self.regex, national)
    }
}

/// One region sharing country code 1, in the metadata's order.
struct NanpRegion {
    id: phonenumber::country::Id,
    region: Option<Region>,
    leading_digits: Option<Regex>,
    general: Pattern,
    /// The descriptors `phonenumber`'s `number_type` tries (a match on any is a known type).
    types: Vec<Pattern>,
}

impl NanpRegion {
    /// `number_type(meta, national) != Type::Unknown`.
    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|p| p.is_match(national))
    }
}

/// The regex options `phonenumber` builds its metadata patterns with.
fn compile(source: &str) -> Option<Regex> {
    regex::RegexBuilder::new(source)
        .ignore_whitespace(true)
        .build()
        .ok()
}

fn starts_match(re: &Regex, text: &str) -> bool {
    re.find(text).is_some_and(|m| m.start() == 0)
}

/// The NANP regions, or `None` (fast path off) if the metadata is not as expected.
fn regions() -> Option<&'static [NanpRegion]> {
    static TABLE: OnceLock<Option<Vec<NanpRegion>>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let ids = DATABASE.region(&1u16)?;
            // With one region the crate takes no region-search path; keep to the known case.
            if ids.len() < 2 {
                return None;
            }
            ids.iter()
                .map(|name| {
                    let meta = DATABASE.by_id(*name)?;
                    let id: phonenumber::country::Id = name.parse().ok()?;
                    let d = meta.descriptors();
                    let types = [
                        d.premium_rate(),
                        d.toll_free(),
                        d.shared_cost(),
                        d.voip(),
                        d.personal_number(),
                        d.pager(),
                        d.uan(),
                        d.voicemail(),
                        d.fixed_line(),
                        d.mobile(),
                    ]
                    .into_iter()
                    .flatten()
                    .map(Pattern::new)
                    .collect::<Option<Vec<_>>>()?;
                    let leading_digits = match meta.leading_digits() {
                        Some(p) => Some(compile(p.as_str())?),
                        None => None,
                    };
                    Some(NanpRegion {
                        id,
                        region: meta.id().parse().ok().and_then(Region::from_id),
                        leading_digits,
                        general: Pattern::new(d.general())?,
                        types,
                    })
                })
                .collect()
        })
        .as_deref()
}

/// `Some(result)` when `trimmed` is a NANP number in one of the plain ten-digit shapes (with
/// `+1`, or with a NANP default region), `None` when the crate's parser must decide.
pub(super) fn normalize(
    trimmed: &str,
    default_region: Option<Region>,
) -> Option<Result<E164, PhoneError>> {
    let table = regions()?;
    let plus = trimmed.starts_with('+');
    if !plus {
        let region = default_region?;
        if !table.iter().any(|r| r.id == region.id) {
            return None;
        }
    }
    let national = ten_digits(trimmed.as_bytes(), plus)?;
    let national = std::str::from_utf8(&national).ok()?;
    Some(lookup(table, national).map(|region| {
        let mut text = String::with_capacity(12);
        text.push_str("+1");
        text.push_str(national);
        E164 { text, region }
    }))
}

/// `validator::source_for` then `is_valid` for country code 1: the first region whose leading
/// digits match (or, without leading digits, whose numbering plan knows the number) owns it.
fn lookup(table: &[NanpRegion], national: &str) -> Result<Option<Region>, PhoneError> {
    for r in table {
        match &r.leading_digits {
            Some(ld) if starts_match(ld, national) => {
                return if r.is_valid(national) {
                    Ok(r.region)
                } else {
                    Err(PhoneError::Invalid)
                };
            }
            Some(_) => {}
            None if r.is_valid(national) => return Ok(r.region),
            None => {}
        }
    }
    Err(PhoneError::Invalid)
}

/// The national number of `[+1 sep | +1 (ten digits only) | 1 sep?]` then `(AAA) sep? | AAA
/// sep?` then `XXX sep? XXXX`, sep one of ` -.`, the area code starting with 2-9; `+1` only
/// when `plus`, a bare trunk `1` only when not. Anything else is `None`.
fn ten_digits(b: &[u8], plus: bool) -> Option<[u8; 10]> {
    let mut i = 0;
    let at = |i: usize| b.get(i).copied();
    let skip_sep = |i: &mut usize| {
        if matches!(at(*i), Some(b' ' | b'-' | b'.')) {
            *i += 1;
        }
    };
    if plus {
        if at(1) != Some(b'1') {
            return None;
        }
        i = 2;
        skip_sep(&mut i);
        // `+1` glued to punctuated digits (`+1415-555-2671`) is read differently by the
        // crate (as a longer country code): only `+1 ...` or the compact `+14155552671`.
        if i == 2 && !(b.len() == 12 && b[2..].iter().all(u8::is_ascii_digit)) {
            return None;
        }
    } else if at(0) == Some(b'1') {
        i = 1;
        skip_sep(&mut i);
    }
    let mut out = [0u8; 10];
    let mut n = 0;
    let mut digits = |i: &mut usize, count: usize| -> Option<()> {
        for _ in 0..count {
            let c = at(*i).filter(u8::is_ascii_digit)?;
            out[n] = c;
            n += 1;
            *i += 1;
        }
        Some(())
    };
    let paren = at(i) == Some(b'(');
    if paren {
        i += 1;
    }
    digits(&mut i, 3)?;
    if paren {
        if at(i) != Some(b')') {
            return None;
        }
        i += 1;
    }
    skip_sep(&mut i);
    digits(&mut i, 3)?;
    skip_sep(&mut i);
    digits(&mut i, 4)?;
    (i == b.len() && matches!(out[0], b'2'..=b'9')).then_some(out)
}
