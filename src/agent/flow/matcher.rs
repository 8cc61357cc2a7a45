//! Intent recognition: normalised phrase matching with a confidence, and the rules that make
//! the flow ask again instead of guessing.
//!
//! Replies and phrases are normalised the same way (lowercase, punctuation dropped,
//! contractions expanded), and a phrase matches when its words occur contiguously in the
//! reply. The intent with the longest matching phrase wins; a tie between intents is
//! ambiguous. A *sensitive* intent (opt-out) must also be the only intent matched, be
//! heard with high recognizer confidence, cover a good part of the reply, and not follow
//! "not"/"never": a wrongly recorded do-not-call loses a lead for good, a re-ask costs a turn.

use std::collections::BTreeMap;

use super::Flow;

/// Share of the reply a sensitive phrase must cover ("please stop calling me": 3 of 4 words).
pub const SENSITIVE_MIN_COVERAGE: f32 = 0.4;

/// A reply as normalised words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Words(Vec<String>);

impl Words {
    /// Normalises `text`: lowercase, no punctuation, contractions expanded ("I'm" → "i am").
    pub fn new(text: &str) -> Self {
        let lowered: String = text
            .chars()
            .flat_map(char::to_lowercase)
            .map(|c| match c {
                '’' | '\'' => '\'',
                c if c.is_alphanumeric() => c,
                _ => ' ',
            })
            .collect();
        let mut words = Vec::new();
        for token in lowered.split_whitespace() {
            expand(token.trim_matches('\''), &mut words);
        }
        Self(words)
    }

    /// The words.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Start of the first contiguous occurrence of `phrase` in these words.
    pub fn find(&self, phrase: &Words) -> Option<usize> {
        if phrase.is_empty() || phrase.len() > self.len() {
            return None;
        }
        self.0.windows(phrase.len()).position(|w| w == phrase.0)
    }

    /// The words joined by single spaces.
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

/// Pushes the words of one token, contractions expanded.
fn expand(token: &str, out: &mut Vec<String>) {
    let fixed: Option<&[&str]> = match token {
        "" => Some(&[]),
        "can't" | "cannot" => Some(&["can", "not"]),
        "won't" => Some(&["will", "not"]),
        "shan't" => Some(&["shall", "not"]),
        "ain't" => Some(&["is", "not"]),
        "let's" => Some(&["let", "us"]),
        "ok" => Some(&["okay"]),
        "it's" => Some(&["it", "is"]),
        "that's" => Some(&["that", "is"]),
        "what's" => Some(&["what", "is"]),
        "who's" => Some(&["who", "is"]),
        "there's" => Some(&["there", "is"]),
        "he's" => Some(&["he", "is"]),
        "she's" => Some(&["she", "is"]),
        _ => None,
    };
    if let Some(words) = fixed {
        out.extend(words.iter().map(|w| (*w).to_owned()));
        return;
    }
    const SUFFIXES: &[(&str, &str)] = &[
        ("n't", "not"),
        ("'m", "am"),
        ("'re", "are"),
        ("'ll", "will"),
        ("'ve", "have"),
        ("'d", "would"),
        ("'s", ""),
    ];
    for (suffix, word) in SUFFIXES {
        if let Some(stem) = token.strip_suffix(suffix) {
            out.push(stem.replace('\'', ""));
            if !word.is_empty() {
                out.push((*word).to_owned());
            }
            return;
        }
    }
    out.push(token.replace('\'', ""));
}

/// What a reply was recognized as.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognition {
    /// A confident match.
    Intent {
        /// The intent.
        intent: String,
        /// Recognizer confidence weighted by how much of the reply the phrase explains.
        confidence: f32,
        /// Slots found in the reply (for the intent's slots).
        slots: BTreeMap<String, String>,
    },
    /// Not sure: the flow asks again.
    Unsure(Unsure),
}

/// Why a reply was not taken as an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsure {
    /// Nothing was said (after normalisation).
    Empty,
    /// The recognizer's confidence is below the flow's minimum.
    LowConfidence,
    /// No phrase of any intent answerable here matched.
    NoMatch,
    /// Several intents matched equally well (or one of them is sensitive).
    Ambiguous(Vec<String>),
    /// A sensitive intent matched, but not confidently enough to act on.
    NotSureEnough(String),
}

/// One intent that matched the reply.
struct Candidate<'a> {
    /// The intent.
    name: &'a str,
    /// Words matched (phrase length, or slot value length).
    len: usize,
    /// Where the match starts.
    start: usize,
    /// Slots found.
    slots: BTreeMap<String, String>,
    /// Whether the intent is sensitive.
    sensitive: bool,
}

/// Recognizes `text` (heard with `confidence`) among the intents answerable in `state`.
pub(super) fn recognize(flow: &Flow, state: &str, text: &str, confidence: f32) -> Recognition {
    let words = Words::new(text);
    if words.is_empty() {
        return Recognition::Unsure(Unsure::Empty);
    }
    // A NaN confidence counts as low.
    if confidence.is_nan() || confidence < flow.settings.min_confidence {
        return Recognition::Unsure(Unsure::LowConfidence);
    }
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for name in flow.allowed_intents(state) {
        let Some(intent) = flow.intents.get(name) else {
            continue;
        };
        let slots: BTreeMap<String, String> = intent
            .slots
            .iter()
            .filter_map(|s| {
                let kind = flow.slots.get(s)?;
                Some((s.clone(), kind.extract(&words)?))
            })
            .collect();
        let best = intent
            .phrases
            .iter()
            .filter_map(|p| words.find(p).map(|start| (p.len(), start)))
            .max_by_key(|&(len, start)| (len, std::cmp::Reverse(start)));
        let matched = match best {
            Some(m) => Some(m),
            None if intent.phrases.is_empty()
                && !intent.slots.is_empty()
                && slots.len() == intent.slots.len() =>
            {
                let len = slots.values().map(|v| v.split(' ').count()).sum();
                Some((len, 0))
            }
            None => None,
        };
        if let Some((len, start)) = matched {
            candidates.push(Candidate {
                name,
                len,
                start,
                slots,
                sensitive: intent.sensitive,
            });
        }
    }
    let names = |c: &[Candidate<'_>]| c.iter().map(|c| c.name.to_owned()).collect::<Vec<_>>();
    let Some(top_len) = candidates.iter().map(|c| c.len).max() else {
        return Recognition::Unsure(Unsure::NoMatch);
    };
    if candidates.iter().any(|c| c.sensitive) && candidates.len() > 1 {
        return Recognition::Unsure(Unsure::Ambiguous(names(&candidates)));
    }
    let top: Vec<Candidate<'_>> = candidates
        .into_iter()
        .filter(|c| c.len == top_len)
        .collect();
    if top.len() > 1 {
        return Recognition::Unsure(Unsure::Ambiguous(names(&top)));
    }
    let Some(winner) = top.into_iter().next() else {
        return Recognition::Unsure(Unsure::NoMatch);
    };
    let coverage = (winner.len as f32 / words.len() as f32).min(1.0);
    if winner.sensitive {
        let before = &words.as_slice()[winner.start.saturating_sub(2)..winner.start];
        let negated = before.iter().any(|w| w == "not" || w == "never");
        if confidence.is_nan()
            || confidence < flow.settings.sensitive_min_confidence
            || coverage < SENSITIVE_MIN_COVERAGE
            || negated
        {
            return Recognition::Unsure(Unsure::NotSureEnough(winner.name.to_owned()));
        }
    }
    Recognition::Intent {
        intent: winner.name.to_owned(),
        confidence: (confidence.min(1.0) * (0.5 + 0.5 * coverage)),
        slots: winner.slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let cases = [
            ("Yes, I'm interested!", "yes i am interested"),
            ("I DON'T want it.", "i do not want it"),
            ("Can't / won't", "can not will not"),
            ("Who’s this?", "who is this"),
            ("Uh-huh.", "uh huh"),
            ("OK, it's fine", "okay it is fine"),
            (
                "They're here; we've gone; I'd go; you'll see",
                "they are here we have gone i would go you will see",
            ),
            ("the lead's number", "the lead number"),
            ("  ...  ", ""),
            ("'quoted'", "quoted"),
            ("10:30 a.m.", "10 30 a m"),
        ];
        for (text, want) in cases {
            assert_eq!(Words::new(text).joined(), want, "{text}");
        }
    }

    #[test]
    fn find_is_contiguous_and_word_aligned() {
        let reply = Words::new("please stop calling me");
        assert_eq!(reply.find(&Words::new("stop calling me")), Some(1));
        assert_eq!(reply.find(&Words::new("stop me")), None);
        assert_eq!(reply.find(&Words::new("call")), None);
        assert_eq!(reply.find(&Words::new("")), None);
        assert_eq!(Words::new("stop").find(&Words::new("stop calling")), None);
    }
}
