//! Slot extractors: find a value (a day and time) in a normalised reply.

use super::matcher::Words;

/// The kinds of slot a flow can capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotKind {
    /// A day and/or time of day as said: "tomorrow morning", "friday at 3 pm".
    DayTime,
}

/// Slot kind names accepted in flow files.
pub const SLOT_KINDS: &[&str] = &["day_time"];

const DAYS: &[&str] = &[
    "today",
    "tonight",
    "tomorrow",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "weekend",
    "week",
];
const TIMES: &[&str] = &[
    "morning",
    "afternoon",
    "evening",
    "night",
    "noon",
    "midday",
    "lunchtime",
    "lunch",
    "later",
];
/// Words that make a number a clock time ("3 pm"); on their own they are ordinary ("i am").
const CLOCK_SUFFIXES: &[&str] = &["am", "pm", "oclock"];
/// Words kept inside or at the start of a day/time ("next friday at 3").
const JOINERS: &[&str] = &[
    "next", "this", "at", "in", "the", "on", "after", "before", "around", "about", "by",
];
const NUMBERS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirty", "fifteen", "forty", "half",
];

impl SlotKind {
    /// The kind named `name` in a flow file.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "day_time" => Some(Self::DayTime),
            _ => None,
        }
    }

    /// Words a constrained recognizer should allow for this slot.
    pub fn vocabulary(self) -> Vec<String> {
        match self {
            Self::DayTime => DAYS
                .iter()
                .chain(TIMES)
                .chain(CLOCK_SUFFIXES)
                .chain(NUMBERS)
                .chain(["next week", "this afternoon", "tomorrow morning"].iter())
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// The slot's value in `words`, if present.
    pub fn extract(self, words: &Words) -> Option<String> {
        match self {
            Self::DayTime => day_time(words.as_slice()),
        }
    }
}

fn is_clock_number(w: &str) -> bool {
    NUMBERS.contains(&w) || w.parse::<u32>().is_ok_and(|n| n <= 59)
}

/// Whether `word` belongs to the day/time that `next` starts ("next friday", "around 4").
fn leads_in(word: &str, next: &str) -> bool {
    match word {
        "next" | "this" | "the" | "on" | "in" | "at" | "by" => true,
        "about" | "around" | "after" | "before" => is_clock_number(next),
        _ => false,
    }
}

/// The longest run of day/time words (joiners allowed inside), as said.
fn day_time(words: &[String]) -> Option<String> {
    let core = |i: usize| {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let prev = i.checked_sub(1).map(|p| words[p].as_str());
        DAYS.contains(&w)
            || TIMES.contains(&w)
            || (CLOCK_SUFFIXES.contains(&w) && prev.is_some_and(is_clock_number))
            // A number only counts next to a clock word: "at 3", "3 pm", "10 30".
            || (is_clock_number(w)
                && (matches!(prev, Some("at" | "around" | "about" | "after" | "before" | "by"))
                    || next.is_some_and(|n| CLOCK_SUFFIXES.contains(&n) || is_clock_number(n))
                    || prev.is_some_and(is_clock_number)))
    };
    let mut best: Option<(usize, usize, usize)> = None; // (start, end, core count)
    let mut i = 0;
    while i < words.len() {
        if !core(i) {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && leads_in(&words[start - 1], &words[start]) {
            start -= 1;
        }
        let mut end = i;
        let mut count = 1;
        let mut j = i + 1;
        while j < words.len() {
            if core(j) {
                end = j;
                count += 1;
            } else if !JOINERS.contains(&words[j].as_str()) {
                break;
            }
            j += 1;
        }
        if best.is_none_or(|(_, _, c)| count > c) {
            best = Some((start, end, count));
        }
        i = end + 1;
    }
    let (start, end, _) = best?;
    // Leading "at"/"on" add nothing to the value; "next"/"this" change its meaning.
    let start = (start..=end)
        .find(|&k| !matches!(words[k].as_str(), "at" | "in" | "the" | "on" | "by"))
        .unwrap_or(start);
    Some(words[start..=end].join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(text: &str) -> Option<String> {
        SlotKind::DayTime.extract(&Words::new(text))
    }

    #[test]
    fn day_times() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Tomorrow morning works for me.", Some("tomorrow morning")),
            ("Can you call me back tomorrow?", Some("tomorrow")),
            (
                "How about next Friday at 3 pm?",
                Some("next friday at 3 pm"),
            ),
            ("On Monday at 10:30 please", Some("monday at 10 30")),
            ("in the afternoon", Some("afternoon")),
            ("this evening", Some("this evening")),
            ("I have 3 kids", None),
            ("Yes, I am interested.", None),
            ("", None),
            ("at at at", None),
            ("I am here at 5 pm or 6 o'clock", Some("5 pm")),
            ("after 5", Some("after 5")),
        ];
        for (text, want) in cases {
            assert_eq!(extract(text).as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn picks_the_richest_mention() {
        assert_eq!(
            extract("not today, maybe friday afternoon around 4").as_deref(),
            Some("friday afternoon around 4")
        );
    }
}
