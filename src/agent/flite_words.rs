//! When each word of a Flite synthesis ends: the FFI walk over a synthesized utterance's
//! relations, the pure placement of Flite's tokens back onto the text they came from, and the
//! placement of the resulting `text_done` marks on the audio's frames.
//!
//! Flite tokenizes the input into the `Token` relation (each token keeps its `name`, stripped
//! of `prepunctuation` and `punc`); text analysis gives each token its words as daughters
//! (numbers expand into several), and each word's syllables and segments hang under it in
//! `SylStructure`. A segment's `end` is its end time in seconds, which the wave follows. A
//! token ends when the last segment of its last pronounced word ends.
//!
//! Every Flite accessor that meets a missing feature calls `cst_error`, which exits the
//! process, so the walk checks presence before every read and skips what it cannot time.

use std::ffi::{CStr, c_char, c_int};

use super::stages::TtsAudio;
use super::tts_flite::ffi::{CstVoice, CstWave};

/// Speech for one text, with when each of its words ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimedSpeech {
    /// Mono 16-bit PCM at the rate asked for.
    pub pcm: Vec<i16>,
    /// The words' ends in order; empty when Flite's timings could not be read.
    pub words: Vec<WordEnd>,
}

impl TimedSpeech {
    /// `(frame index, text_done)` for each word: the frame of `frame` samples during which
    /// the word's last sample plays, and `base` + the word's end (at most `text_done`).
    fn word_marks(&self, frame: usize, base: usize, text_done: usize) -> Vec<(usize, usize)> {
        let frame = frame.max(1);
        let last = self.pcm.len().div_ceil(frame).saturating_sub(1);
        self.words
            .iter()
            .map(|w| {
                let at = (w.sample.saturating_sub(1) / frame).min(last);
                (at, (base + w.text_end).min(text_done))
            })
            .collect()
    }

    /// The audio as frames of `frame` samples (the last zero-padded; one silent frame when
    /// there is no audio) for text starting at byte `base` of the pushed text: the frame
    /// during which a word ends carries that word's end as `text_done`, the last frame
    /// `text_done` (repeating the last word's mark when that word ends the text). Without
    /// `base`, only the last frame is marked.
    pub fn frames(&self, frame: usize, base: Option<usize>, text_done: usize) -> Vec<TtsAudio> {
        let frame = frame.max(1);
        let mut frames: Vec<TtsAudio> = self
            .pcm
            .chunks(frame)
            .map(|c| TtsAudio {
                samples: c.to_vec(),
                text_done: None,
            })
            .collect();
        if frames.is_empty() {
            // Nothing pronounceable: one silent frame still reports the text as done.
            frames.push(TtsAudio {
                samples: Vec::new(),
                text_done: None,
            });
        }
        for (at, done) in base.map_or_else(Vec::new, |b| self.word_marks(frame, b, text_done)) {
            frames[at].text_done = Some(done);
        }
        if let Some(last) = frames.last_mut() {
            last.samples.resize(frame, 0);
            last.text_done = Some(text_done);
        }
        frames
    }

    /// The audio in one chunk per word (whole frames of `frame` samples, the last
    /// zero-padded), each ending with the frame during which its word ends and carrying its
    /// end; the last chunk carries `text_done`. Like [`TimedSpeech::frames`] with one mark
    /// per word instead of one chunk per frame, for drivers that queue a sentence at once.
    pub fn word_chunks(
        &self,
        frame: usize,
        base: Option<usize>,
        text_done: usize,
    ) -> Vec<TtsAudio> {
        let frame = frame.max(1);
        let total = self.pcm.len().div_ceil(frame).max(1) * frame;
        let mut padded = self.pcm.clone();
        padded.resize(total, 0);
        let words = base.map_or_else(Vec::new, |b| self.word_marks(frame, b, text_done));
        let cuts = words
            .into_iter()
            .map(|(at, done)| ((at + 1) * frame, done))
            .chain([(total, text_done)]);
        let mut chunks: Vec<TtsAudio> = Vec::new();
        let mut start = 0;
        for (end, done) in cuts {
            match chunks.last_mut() {
                // Another word ending in the same frame: that chunk completes it too.
                Some(c) if end <= start => c.text_done = Some(done),
                _ => {
                    chunks.push(TtsAudio {
                        samples: padded[start..end].to_vec(),
                        text_done: Some(done),
                    });
                    start = end;
                }
            }
        }
        chunks
    }
}

/// Where a spoken word ends, in the text and in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordEnd {
    /// Byte offset in the text just past the word and its trailing punctuation.
    pub text_end: usize,
    /// Sample offset (at the rate asked for) where the word's last sound ends.
    pub sample: usize,
}

/// One Flite token as spoken.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FliteToken {
    /// The token's text without its punctuation.
    pub name: String,
    /// Its trailing punctuation.
    pub punc: String,
    /// When its last segment ends (seconds from the start of the wave), if it has one.
    pub end_secs: Option<f32>,
}

/// A synthesized Flite utterance, deleted on drop.
///
/// Flite is not thread-safe: create, use and drop it under the synthesizer's lock.
pub(super) struct Utterance(*mut CstUtterance);

impl Utterance {
    /// Synthesizes `text` with `voice`.
    ///
    /// # Safety
    /// `voice` is a registered voice and the caller holds the lock serialising Flite until the
    /// utterance is dropped.
    pub unsafe fn synth(text: &CStr, voice: *mut CstVoice) -> Option<Self> {
        // SAFETY: per the contract above.
        let u = unsafe { ffi::flite_synth_text(text.as_ptr(), voice) };
        (!u.is_null()).then_some(Self(u))
    }

    /// The synthesized wave, owned by the utterance.
    pub fn wave(&self) -> Option<&CstWave> {
        // SAFETY: the utterance is alive; `utt_wave` errors out on a missing feature, so its
        // presence is checked first. The wave lives as long as the utterance.
        unsafe {
            let features = (*self.0).features;
            if features.is_null() || ffi::feat_present(features, c"wave".as_ptr()) == 0 {
                return None;
            }
            ffi::utt_wave(self.0).as_ref()
        }
    }

    /// The utterance's tokens in order, each with the time its last segment ends; empty when
    /// the utterance has no `Token` relation.
    pub fn tokens(&self) -> Vec<FliteToken> {
        let mut tokens = Vec::new();
        // SAFETY: the utterance is alive; every pointer is checked before use and every
        // feature read is preceded by a presence check.
        unsafe {
            if ffi::utt_relation_present(self.0, c"Token".as_ptr()) == 0 {
                return tokens;
            }
            let rel = ffi::utt_relation(self.0, c"Token".as_ptr());
            if rel.is_null() {
                return tokens;
            }
            let mut t = ffi::relation_head(rel);
            while !t.is_null() {
                tokens.push(FliteToken {
                    name: feat_string(t, c"name").unwrap_or_default(),
                    punc: feat_string(t, c"punc").unwrap_or_default(),
                    end_secs: token_end(t),
                });
                t = ffi::item_next(t);
            }
        }
        tokens
    }
}

impl Drop for Utterance {
    fn drop(&mut self) {
        // SAFETY: created by `flite_synth_text`, deleted once, under the caller's lock.
        unsafe { ffi::delete_utterance(self.0) };
    }
}

/// A string feature of `item`, if present.
///
/// # Safety
/// `item` is a live item.
unsafe fn feat_string(item: *const CstItem, name: &CStr) -> Option<String> {
    // SAFETY: presence is checked first; Flite's string features are NUL-terminated.
    unsafe {
        if ffi::item_feat_present(item, name.as_ptr()) == 0 {
            return None;
        }
        let s = ffi::item_feat_string(item, name.as_ptr());
        (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// When the last segment of token `t`'s last pronounced word ends.
///
/// # Safety
/// `t` is a live item of the `Token` relation.
unsafe fn token_end(t: *const CstItem) -> Option<f32> {
    // SAFETY: every item pointer is checked before use; `end` is read only when present.
    unsafe {
        let mut word = ffi::item_last_daughter(t);
        while !word.is_null() {
            let structure = ffi::item_as(word, c"SylStructure".as_ptr());
            let mut syllable = if structure.is_null() {
                std::ptr::null_mut()
            } else {
                ffi::item_last_daughter(structure)
            };
            while !syllable.is_null() {
                let segment = ffi::item_last_daughter(syllable);
                if !segment.is_null() && ffi::item_feat_present(segment, c"end".as_ptr()) != 0 {
                    let end = ffi::item_feat_float(segment, c"end".as_ptr());
                    return end.is_finite().then_some(end);
                }
                syllable = ffi::item_prev(syllable);
            }
            word = ffi::item_prev(word);
        }
        None
    }
}

/// Places `tokens` on `text` (the text Flite was given), in order: for each timed token, the
/// byte end of its name plus its trailing punctuation, with its end time. Times never go back;
/// a token whose name cannot be found next in the text, as a whole word, is skipped.
pub(super) fn place_tokens(text: &str, tokens: &[FliteToken]) -> Vec<(usize, f32)> {
    let mut placed: Vec<(usize, f32)> = Vec::new();
    let mut cursor = 0;
    for t in tokens {
        let Some(at) = find_word(text, cursor, &t.name) else {
            continue;
        };
        let mut end = at + t.name.len();
        if !t.punc.is_empty() && text[end..].starts_with(t.punc.as_str()) {
            end += t.punc.len();
        }
        cursor = end;
        let Some(secs) = t.end_secs else { continue };
        let secs = placed.last().map_or(secs, |&(_, last)| secs.max(last));
        placed.push((end, secs));
    }
    placed
}

/// The first occurrence of `name` at or after `from` that is not part of a longer word (no
/// letter or digit just before or after it), so a short token never lands inside another.
fn find_word(text: &str, from: usize, name: &str) -> Option<usize> {
    if name.is_empty() {
        return None;
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text[from..]
        .match_indices(name)
        .map(|(at, _)| from + at)
        .find(|&at| {
            let end = at + name.len();
            let glued_before = alnum(text[..at].chars().next_back()) && alnum(name.chars().next());
            let glued_after = alnum(text[end..].chars().next()) && alnum(name.chars().next_back());
            !glued_before && !glued_after
        })
}

/// `cst_utterance`, `cst_item` and the few utterance functions of Flite 2.2 used here.
mod ffi {
    use super::{CstVoice, CstWave, c_char, c_int};

    /// `cst_features` (opaque).
    #[repr(C)]
    pub struct CstFeatures {
        _private: [u8; 0],
    }

    /// `cst_relation` (opaque).
    #[repr(C)]
    pub struct CstRelation {
        _private: [u8; 0],
    }

    /// The head of `cst_utterance` from `cst_utterance.h` (only `features` is read).
    #[repr(C)]
    pub struct CstUtterance {
        pub features: *mut CstFeatures,
        pub ffunctions: *mut CstFeatures,
        pub relations: *mut CstFeatures,
    }

    /// `cst_item` (opaque).
    #[repr(C)]
    pub struct CstItem {
        _private: [u8; 0],
    }

    #[link(name = "flite")]
    unsafe extern "C" {
        pub fn flite_synth_text(text: *const c_char, voice: *mut CstVoice) -> *mut CstUtterance;
        pub fn delete_utterance(u: *mut CstUtterance);
        pub fn utt_wave(u: *mut CstUtterance) -> *mut CstWave;
        pub fn feat_present(f: *const CstFeatures, name: *const c_char) -> c_int;
        pub fn utt_relation_present(u: *mut CstUtterance, name: *const c_char) -> c_int;
        pub fn utt_relation(u: *const CstUtterance, name: *const c_char) -> *mut CstRelation;
        pub fn relation_head(r: *mut CstRelation) -> *mut CstItem;
        pub fn item_next(i: *const CstItem) -> *mut CstItem;
        pub fn item_prev(i: *const CstItem) -> *mut CstItem;
        pub fn item_last_daughter(i: *const CstItem) -> *mut CstItem;
        pub fn item_as(i: *const CstItem, rname: *const c_char) -> *mut CstItem;
        pub fn item_feat_present(i: *const CstItem, name: *const c_char) -> c_int;
        pub fn item_feat_string(i: *const CstItem, name: *const c_char) -> *const c_char;
        pub fn item_feat_float(i: *const CstItem, name: *const c_char) -> f32;
    }
}

use ffi::{CstItem, CstUtterance};

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, punc: &str, end: Option<f32>) -> FliteToken {
        FliteToken {
            name: name.into(),
            punc: punc.into(),
            end_secs: end,
        }
    }

    #[test]
    fn word_marks_land_on_frames_and_chunks() {
        let speech = TimedSpeech {
            pcm: vec![1; 1000],
            words: vec![
                WordEnd {
                    text_end: 5,
                    sample: 300,
                },
                WordEnd {
                    text_end: 9,
                    sample: 320,
                },
                WordEnd {
                    text_end: 14,
                    sample: 900,
                },
            ],
        };
        let frames = speech.frames(160, Some(10), 30);
        assert!(frames.iter().all(|f| f.samples.len() == 160));
        let done: Vec<_> = frames.iter().map(|f| f.text_done).collect();
        // Samples 300 and 320 both end in frame 1 (160..320): it completes both words.
        assert_eq!(done, [None, Some(19), None, None, None, Some(24), Some(30)]);
        let chunks = speech.word_chunks(160, Some(10), 30);
        let shape: Vec<_> = chunks
            .iter()
            .map(|c| (c.samples.len(), c.text_done))
            .collect();
        assert_eq!(shape, [(320, Some(19)), (640, Some(24)), (160, Some(30))]);
        assert_eq!(chunks.iter().map(|c| c.samples.len()).sum::<usize>(), 1120);
        // Without the text's place, only the end is marked.
        let done: Vec<_> = speech
            .frames(160, None, 30)
            .iter()
            .filter_map(|f| f.text_done)
            .collect();
        assert_eq!(done, [30]);
        let shape: Vec<_> = speech
            .word_chunks(160, None, 30)
            .iter()
            .map(|c| (c.samples.len(), c.text_done))
            .collect();
        assert_eq!(shape, [(1120, Some(30))]);
        // No audio: one silent frame still reports the text as done.
        let silent = TimedSpeech::default();
        for chunks in [
            silent.frames(160, Some(0), 3),
            silent.word_chunks(160, Some(0), 3),
        ] {
            assert_eq!(chunks.len(), 1);
            assert_eq!(
                (chunks[0].samples.len(), chunks[0].text_done),
                (160, Some(3))
            );
        }
    }

    #[test]
    fn tokens_land_on_word_ends_with_their_punctuation() {
        let text = "\"Hello\" there, it's 3.5 (ok)?";
        let placed = place_tokens(
            text,
            &[
                token("Hello", "\"", Some(0.4)),
                token("there", ",", Some(0.7)),
                token("it's", "", Some(0.9)),
                token("3.5", "", Some(1.6)),
                token("ok", ")?", Some(1.5)),
            ],
        );
        assert_eq!(
            placed,
            [(7, 0.4), (14, 0.7), (19, 0.9), (23, 1.6), (text.len(), 1.6)]
        );
    }

    #[test]
    fn untimed_and_unknown_tokens_give_no_mark_and_keep_the_order() {
        let text = "one ... two three";
        let placed = place_tokens(
            text,
            &[
                token("one", "", Some(0.2)),
                token("...", "", None),
                token("zebra", "", Some(0.5)),
                token("", "", Some(0.5)),
                token("three", "", Some(0.9)),
                token("two", "", Some(1.0)),
            ],
        );
        assert_eq!(placed, [(3, 0.2), (17, 0.9)]);
        // After an unplaced token, a short one does not land inside a longer word.
        let placed = place_tokens(
            "zebra a cat",
            &[
                token("zebru", "", Some(0.5)),
                token("a", "", Some(0.6)),
                token("cat", "", Some(0.9)),
            ],
        );
        assert_eq!(placed, [(7, 0.6), (11, 0.9)]);
    }
}
