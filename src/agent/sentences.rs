//! Splits streamed LLM text into sentences and clauses for the TTS, as soon as each is complete.
//!
//! The first audio should leave before the model has finished, so text is handed on at the
//! first safe boundary: `.`, `!`, `?`, an ellipsis before a capital, or a newline, followed by
//! white space. A boundary that cannot be decided yet (text ends at `.`, which could be
//! `3.5` or `Dr. Who`) waits for the next delta. Abbreviations, decimals, initials and dotted
//! names (`example.com`) do not end a sentence. A clause that grows past the length limit is cut
//! at its last comma-like mark, else at its last space, so a run-on sentence still streams.

/// Default longest clause, in characters, before a forced split.
pub const DEFAULT_MAX_CLAUSE_CHARS: usize = 160;

/// Words that end in `.` without ending the sentence (lowercase, without the final dot).
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "e.g", "i.e", "cf", "no",
    "nos", "approx", "dept", "fig", "gen", "gov", "lt", "col", "sgt", "rev", "hon", "ave", "blvd",
    "rd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "u.s", "u.k", "ph.d",
    "est", "tel", "ext", "min", "max",
];

/// Abbreviations that often end a sentence too: a boundary only when a capital follows.
const FINAL_ABBREVIATIONS: &[&str] = &["etc", "a.m", "p.m", "inc", "ltd", "co", "corp", "llc"];

/// Closing marks that belong to the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '»')
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Streaming sentence/clause splitter: push text deltas, take finished pieces.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    /// Text received but not yet handed on.
    pending: String,
    /// Clause length (characters) that forces a split at a comma or space.
    max_clause_chars: usize,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CLAUSE_CHARS)
    }
}

impl SentenceSplitter {
    /// A splitter that forces a split once a clause exceeds `max_clause_chars` (at least 8).
    pub fn new(max_clause_chars: usize) -> Self {
        Self {
            pending: String::new(),
            max_clause_chars: max_clause_chars.max(8),
        }
    }

    /// Adds a text delta and returns every sentence or clause it completed, trimmed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.pending.push_str(delta);
        let mut out = Vec::new();
        loop {
            let cut = find_boundary(&self.pending).or_else(|| self.clause_cut());
            let Some(cut) = cut else { break };
            let piece: String = self.pending.drain(..cut).collect();
            let piece = piece.trim();
            if !piece.is_empty() {
                out.push(piece.to_owned());
            }
        }
        out
    }

    /// Returns whatever is left (the model finished), trimmed; `None` if only white space.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Drops pending text (barge-in: the reply was abandoned).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Byte index after which an over-long pending clause is cut, if it is over-long.
    fn clause_cut(&self) -> Option<usize> {
        let text = self.pending.trim_start();
        let offset = self.pending.len() - text.len();
        if text.chars().count() <= self.max_clause_chars {
            return None;
        }
        // Only look inside the first `max` characters, and only at complete words.
        let limit = text
            .char_indices()
            .nth(self.max_clause_chars)
            .map_or(text.len(), |(i, _)| i);
        let window = &text[..limit];
        let mut comma = None;
        let mut space = None;
        let mut prev = None;
        for (i, c) in window.char_indices() {
            if c.is_whitespace() && i > 0 {
                space = Some(i);
                if matches!(prev, Some(',' | ';' | ':' | '—' | '–')) {
                    comma = Some(i);
                }
            }
            prev = Some(c);
        }
        comma.or(space).map(|i| offset + i)
    }
}

/// Byte index just past the first complete sentence in `buf`, if one is decided.
fn find_boundary(buf: &str) -> Option<usize> {
    let chars: Vec<(usize, char)> = buf.char_indices().collect();
    let byte_at = |k: usize| chars.get(k).map_or(buf.len(), |(b, _)| *b);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c == '\n' {
            return Some(byte_at(i + 1));
        }
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        let run_start = i;
        let mut j = i;
        while j < chars.len() && is_terminator(chars[j].1) {
            j += 1;
        }
        let run: String = chars[run_start..j].iter().map(|(_, c)| *c).collect();
        let mut k = j;
        while k < chars.len() && is_closer(chars[k].1) {
            k += 1;
        }
        // Nothing after the mark yet: "3." may become "3.5", "?" may become "?!".
        let &(_, next) = chars.get(k)?;
        if !next.is_whitespace() {
            i = k.max(i + 1);
            continue;
        }
        let after = chars[k..]
            .iter()
            .map(|(_, c)| *c)
            .find(|c| !c.is_whitespace());
        let is_ellipsis = run == "…" || run.starts_with("..");
        let decided = if run.contains(['!', '?']) {
            Some(true)
        } else if is_ellipsis {
            // "Well... let me see" is one sentence; "Right... So" is two.
            after.map(char::is_uppercase)
        } else {
            let word = word_before(&chars[..run_start]);
            if TITLES.contains(&word.as_str()) || is_initial(&word) {
                Some(false)
            } else if FINAL_ABBREVIATIONS.contains(&word.as_str()) {
                after.map(char::is_uppercase)
            } else {
                Some(true)
            }
        };
        match decided {
            Some(true) => return Some(byte_at(k)),
            Some(false) => i = k,
            None => return None,
        }
    }
    None
}

/// The lowercased word just before a `.`, without opening quotes or brackets.
fn word_before(chars: &[(usize, char)]) -> String {
    let start = chars
        .iter()
        .rposition(|(_, c)| c.is_whitespace())
        .map_or(0, |p| p + 1);
    chars[start..]
        .iter()
        .map(|(_, c)| *c)
        .skip_while(|c| matches!(c, '"' | '\'' | '“' | '‘' | '(' | '['))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A single capital letter, as in "J. R. R. Tolkien" (after lowercasing: one letter).
fn is_initial(word: &str) -> bool {
    let mut it = word.chars();
    matches!((it.next(), it.next()), (Some(c), None) if c.is_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in pieces of `step` characters and collects everything, flush included.
    fn split(text: &str, step: usize, max: usize) -> Vec<String> {
        let mut s = SentenceSplitter::new(max);
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for chunk in chars.chunks(step) {
            out.extend(s.push(&chunk.iter().collect::<String>()));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Hello there. How are you?",
                &["Hello there.", "How are you?"],
            ),
            ("Wait! Really?! Yes.", &["Wait!", "Really?!", "Yes."]),
            ("Dr. Smith will call. OK?", &["Dr. Smith will call.", "OK?"]),
            (
                "Mr. and Mrs. Jones live on Main St. near the park.",
                &["Mr. and Mrs. Jones live on Main St. near the park."],
            ),
            (
                "Bring ID, e.g. a passport. Thanks.",
                &["Bring ID, e.g. a passport.", "Thanks."],
            ),
            (
                "That is, i.e. the second one. Right.",
                &["That is, i.e. the second one.", "Right."],
            ),
            (
                "The rate is 3.5 percent. It was 4.25 before.",
                &["The rate is 3.5 percent.", "It was 4.25 before."],
            ),
            (
                "It costs $1,299.99 today. Nice.",
                &["It costs $1,299.99 today.", "Nice."],
            ),
            (
                "Well... let me check. Hmm... Okay, done.",
                &["Well... let me check.", "Hmm...", "Okay, done."],
            ),
            ("Right… So it goes.", &["Right…", "So it goes."]),
            (
                "He said \"stop.\" Then he left.",
                &["He said \"stop.\"", "Then he left."],
            ),
            ("(Just kidding.) Anyway.", &["(Just kidding.)", "Anyway."]),
            (
                "Visit example.com today. Bye.",
                &["Visit example.com today.", "Bye."],
            ),
            (
                "J. R. R. Tolkien wrote it. Yes.",
                &["J. R. R. Tolkien wrote it.", "Yes."],
            ),
            (
                "Call me at 9 a.m. tomorrow. Or at 5 p.m. Thanks.",
                &["Call me at 9 a.m. tomorrow.", "Or at 5 p.m.", "Thanks."],
            ),
            (
                "Apples, pears, etc. are fine.",
                &["Apples, pears, etc. are fine."],
            ),
            ("Line one\nLine two", &["Line one", "Line two"]),
            ("No ending punctuation", &["No ending punctuation"]),
            ("Trailing abbreviation Dr.", &["Trailing abbreviation Dr."]),
            ("  ", &[]),
            ("", &[]),
            ("Is it 3.", &["Is it 3."]),
        ];
        for (text, want) in cases {
            for step in [1, 2, 3, 7, 1000] {
                assert_eq!(split(text, step, 160), *want, "{text:?} in steps of {step}");
            }
        }
    }

    #[test]
    fn long_clauses_split_at_comma_then_space() {
        let text = "I can book a call with one of our advisors, who will explain the options in detail and answer your questions";
        let got = split(text, 4, 60);
        assert_eq!(
            got,
            [
                "I can book a call with one of our advisors,",
                "who will explain the options in detail and answer your",
                "questions",
            ]
        );
        for piece in &got {
            assert!(piece.chars().count() <= 60, "{piece}");
        }
    }

    #[test]
    fn first_sentence_leaves_before_the_model_finishes() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("Hi, this is").is_empty());
        assert!(
            s.push(" Ava.").is_empty(),
            "a final '.' waits for what follows"
        );
        assert_eq!(s.push(" How"), ["Hi, this is Ava."]);
        assert!(s.push(" are you").is_empty());
        assert_eq!(s.finish().as_deref(), Some("How are you"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn clear_drops_pending_text() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("Half a sen").is_empty());
        s.clear();
        assert_eq!(s.push("New. "), ["New."]);
    }

    #[test]
    fn odd_input_never_panics() {
        let inputs = [
            "....",
            "?!?!",
            "é. ü! ",
            "\"\"\"",
            ". . .",
            "…\n…",
            "a.\u{301} b",
        ];
        for text in inputs {
            for step in [1, 2, 5] {
                let _ = split(text, step, 8);
            }
        }
    }
}
