//! The embedded offline recognizer: PocketSphinx (Debian `libpocketsphinx-dev` and
//! `pocketsphinx-en-us`, BSD licence) constrained to the replies the current flow state expects.
//!
//! Open-vocabulary PocketSphinx is poor on telephone-band audio, so every utterance is decoded
//! twice: once against a JSGF grammar whose only sentences are the expected phrases, and once
//! against a free phone loop (allphone search), which is the garbage model: the best any
//! sequence of sounds could score on that audio. The grammar's phrase is taken only when its
//! words cover the speech the phone loop found and score close to it per frame; speech outside
//! the grammar leaves speech uncovered or scores far below the loop, and comes back as no match
//! (the flow asks again). A grammar-internal garbage loop of phone words was tried and either
//! swallowed every utterance or, with `-bestpath`, took seconds per utterance.
//!
//! Debian bookworm ships PocketSphinx 0.8+5prealpha; the few C functions used are declared
//! here and linked from the system libraries (no build script needed).

use crate::codec::resample::resample_all;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where Debian's `pocketsphinx-en-us` puts the US English model.
pub const DEFAULT_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

/// One intent the flow state accepts and the phrases that say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPhrase {
    pub intent: String,
    pub phrases: Vec<String>,
}

/// What the recognizer made of one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The intent, or `None` when the utterance matched nothing well enough (ask again).
    pub intent: Option<String>,
    /// The grammar's best phrase (fillers removed), empty when no phrase fits at all.
    pub text: String,
    /// 0..1; intents are only returned at or above [`SphinxConfig::min_confidence`].
    pub confidence: f32,
}

/// Tuning of the recognizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SphinxConfig {
    /// Lowest confidence returned as an intent.
    pub min_confidence: f32,
}

impl Default for SphinxConfig {
    fn default() -> Self {
        SphinxConfig {
            min_confidence: 0.3,
        }
    }
}

/// Why the recognizer could not be built or run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SttError {
    #[error("pocketsphinx model not found at {0} (apt-get install pocketsphinx-en-us)")]
    ModelMissing(PathBuf),
    #[error("pocketsphinx decoder init failed: {0}")]
    Init(String),
    #[error("unsupported input rate {0} Hz (8000, 16000, 24000 or 48000)")]
    UnsupportedRate(u32),
    #[error("no expected phrase is speakable with the dictionary: {0}")]
    EmptyGrammar(String),
    #[error("pocketsphinx rejected the grammar: {0}")]
    Grammar(String),
    #[error("pocketsphinx decode failed: {0}")]
    Decode(&'static str),
}

/// A PocketSphinx decoder that maps an utterance to one of the expected intents, or none.
pub struct SphinxRecognizer {
    ps: Decoder,
    config: SphinxConfig,
    /// The JSGF text loaded as the `flow` search, to skip rebuilding it for the same state.
    grammar: String,
    /// Normalised phrase text -> intent, for the loaded grammar.
    phrase_intent: HashMap<String, String>,
}

impl std::fmt::Debug for SphinxRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SphinxRecognizer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const DECODE_RATE: u32 = 16000;
const FLOW_SEARCH: &CStr = c"flow";
const PHONE_SEARCH: &CStr = c"phones";
/// Acoustic scores are kept shifted right by 10 bits (`SENSCR_SHIFT`).
const LN_LOGBASE: f64 = 0.000_099_995 * 1024.0;

impl SphinxRecognizer {
    /// A recognizer on the model in `model_dir` (e.g. [`DEFAULT_MODEL_DIR`]) with defaults.
    pub fn new(model_dir: &Path) -> Result<Self, SttError> {
        Self::with_config(model_dir, SphinxConfig::default())
    }

    /// A recognizer with explicit tuning.
    pub fn with_config(model_dir: &Path, config: SphinxConfig) -> Result<Self, SttError> {
        let hmm = model_dir.join("en-us");
        let dict = model_dir.join("cmudict-en-us.dict");
        let phone_lm = model_dir.join("en-us-phone.lm.bin");
        for p in [&hmm, &dict, &phone_lm] {
            if !p.exists() {
                return Err(SttError::ModelMissing(p.clone()));
            }
        }
        let args = [
            ("-hmm", path_str(&hmm)?),
            ("-dict", path_str(&dict)?),
            ("-logfn", "/dev/null".to_string()),
            // The lattice best path over a phone loop is very slow; the Viterbi backtrace is
            // what the scores below compare.
            ("-bestpath", "no".to_string()),
            ("-allphone_ci", "yes".to_string()),
        ];
        let mut ps = Decoder::new(&args)?;
        ps.set_allphone(PHONE_SEARCH, &path_str(&phone_lm)?)?;
        Ok(SphinxRecognizer {
            ps,
            config,
            grammar: String::new(),
            phrase_intent: HashMap::new(),
        })
    }

    /// Recognises one utterance of 16-bit PCM at `rate` against the expected intents.
    pub fn recognize(
        &mut self,
        pcm: &[i16],
        rate: u32,
        expected: &[ExpectedPhrase],
    ) -> Result<Recognition, SttError> {
        // The model is wideband and its feat.params fixes a 6.8 kHz filter bank, so telephone
        // audio is upsampled rather than decoded at 8 kHz (which recognised 5 of 28 here).
        let audio = if rate == DECODE_RATE {
            std::borrow::Cow::Borrowed(pcm)
        } else {
            std::borrow::Cow::Owned(
                resample_all(pcm, rate, DECODE_RATE)
                    .map_err(|_| SttError::UnsupportedRate(rate))?,
            )
        };
        self.load_grammar(expected)?;
        self.ps.set_search(FLOW_SEARCH)?;
        let path = self.ps.decode(&audio)?;
        self.ps.set_search(PHONE_SEARCH)?;
        let phones = self.ps.decode(&audio)?;
        let words: Vec<&Segment> = path.iter().filter(|s| !s.is_filler()).collect();
        let text = words
            .iter()
            .map(|s| s.word.split('(').next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        let verdict = Verdict::new(&words, &phones);
        let confidence = if words.is_empty() {
            0.0
        } else {
            verdict.confidence()
        };
        let intent = if confidence < self.config.min_confidence {
            None
        } else {
            self.phrase_intent.get(&text).cloned()
        };
        Ok(Recognition {
            intent,
            text,
            confidence,
        })
    }

    /// Builds and loads the grammar for `expected` unless it is already loaded.
    fn load_grammar(&mut self, expected: &[ExpectedPhrase]) -> Result<(), SttError> {
        let mut phrase_intent = HashMap::new();
        let mut rules = String::new();
        let mut alternatives = Vec::new();
        let mut skipped = Vec::new();
        for (i, e) in expected.iter().enumerate() {
            let mut spoken = Vec::new();
            for phrase in &e.phrases {
                let words = normalise(phrase);
                if words.is_empty() || !words.iter().all(|w| self.ps.knows(w)) {
                    skipped.push(phrase.clone());
                    continue;
                }
                let text = words.join(" ");
                phrase_intent
                    .entry(text.clone())
                    .or_insert(e.intent.clone());
                spoken.push(text);
            }
            if !spoken.is_empty() {
                rules.push_str(&format!("<i{i}> = {};\n", spoken.join(" | ")));
                alternatives.push(format!("<i{i}>"));
            }
        }
        if alternatives.is_empty() {
            return Err(SttError::EmptyGrammar(skipped.join(", ")));
        }
        if !skipped.is_empty() {
            tracing::warn!(phrases = ?skipped, "phrases with words outside the dictionary skipped");
        }
        let grammar = format!(
            "#JSGF V1.0;\ngrammar flow;\npublic <reply> = {};\n{rules}",
            alternatives.join(" | ")
        );
        if grammar != self.grammar {
            self.ps.set_jsgf(FLOW_SEARCH, &grammar)?;
            self.grammar = grammar;
            self.phrase_intent = phrase_intent;
        }
        Ok(())
    }
}

/// How well the grammar's words explain the speech the phone loop found.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    /// Share of the phone loop's speech frames that fall inside the grammar's words.
    coverage: f64,
    /// Share of the grammar's word frames that the phone loop calls speech.
    precision: f64,
    /// Acoustic log-likelihood per word frame of the phone loop minus that of the words
    /// (nats; >= 0 up to pruning: the phone loop is unconstrained).
    margin: f64,
}

impl Verdict {
    fn new(words: &[&Segment], phones: &[Segment]) -> Verdict {
        let speech: Vec<&Segment> = phones.iter().filter(|s| !s.is_filler()).collect();
        let overlap = |a: &std::ops::Range<u32>, b: &std::ops::Range<u32>| {
            a.end.min(b.end).saturating_sub(a.start.max(b.start))
        };
        let speech_frames: u32 = speech.iter().map(|s| s.frames.len() as u32).sum();
        let word_frames: u32 = words.iter().map(|s| s.frames.len() as u32).sum();
        let covered: u32 = speech
            .iter()
            .flat_map(|p| words.iter().map(move |w| overlap(&p.frames, &w.frames)))
            .sum();
        // The phone loop's acoustic score over the word frames, each phone counted in
        // proportion to its overlap with the words.
        let phone_score: f64 = phones
            .iter()
            .map(|p| {
                let o: u32 = words.iter().map(|w| overlap(&p.frames, &w.frames)).sum();
                f64::from(p.acoustic) * f64::from(o) / f64::from(p.frames.len().max(1) as u32)
            })
            .sum();
        let word_score: f64 = words.iter().map(|w| f64::from(w.acoustic)).sum();
        Verdict {
            coverage: f64::from(covered) / f64::from(speech_frames.max(1)),
            precision: f64::from(covered) / f64::from(word_frames.max(1)),
            margin: (phone_score - word_score) * LN_LOGBASE / f64::from(word_frames.max(1)),
        }
    }

    /// exp(-badness / 4), where badness is the per-frame margin plus 5 nats per unit of
    /// speech left outside the words: an expected phrase said as written scores 0.35..1 on
    /// the shared test utterances, another phrase forced onto them 0..0.35.
    fn confidence(&self) -> f32 {
        let badness = self.margin.max(0.0) + 5.0 * (1.0 - self.coverage);
        (-badness / 4.0).exp().clamp(0.0, 1.0) as f32
    }
}

/// Lower-case words of a phrase, punctuation other than `'` and `-` removed.
fn normalise(phrase: &str) -> Vec<String> {
    phrase
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn path_str(p: &Path) -> Result<String, SttError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| SttError::ModelMissing(p.to_path_buf()))
}

fn cstring(s: &str) -> Result<CString, SttError> {
    CString::new(s).map_err(|_| SttError::Grammar(format!("NUL byte in {s:?}")))
}

/// Owns one `ps_decoder_t`; all unsafe code of this module is here.
struct Decoder {
    ps: *mut ffi::PsDecoder,
}

// SAFETY: a decoder is a self-contained heap object; PocketSphinx keeps no thread-local state
// for it, so moving it to another thread is sound. It is not `Sync` (methods take `&mut self`).
unsafe impl Send for Decoder {}

impl Decoder {
    fn new(args: &[(&str, String)]) -> Result<Decoder, SttError> {
        let owned: Vec<CString> = args
            .iter()
            .flat_map(|(k, v)| [cstring(k), cstring(v)])
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        // SAFETY: silencing the library's log (a process-wide setting) before parsing, which
        // would otherwise print the whole configuration to stderr; argv outlives the call and
        // cmd_ln_parse_r copies the strings.
        unsafe {
            ffi::err_set_logfp(std::ptr::null_mut());
            let config = ffi::cmd_ln_parse_r(
                std::ptr::null_mut(),
                ffi::ps_args(),
                argv.len() as i32,
                argv.as_mut_ptr(),
                1,
            );
            if config.is_null() {
                return Err(SttError::Init(format!("bad arguments {args:?}")));
            }
            let ps = ffi::ps_init(config);
            // ps_init retains the configuration it keeps.
            ffi::cmd_ln_free_r(config);
            if ps.is_null() {
                return Err(SttError::Init("ps_init returned NULL".into()));
            }
            Ok(Decoder { ps })
        }
    }

    fn knows(&mut self, word: &str) -> bool {
        let Ok(w) = CString::new(word) else {
            return false;
        };
        // SAFETY: ps is live; the returned string is ours to free with ckd_free.
        unsafe {
            let phones = ffi::ps_lookup_word(self.ps, w.as_ptr());
            if phones.is_null() {
                false
            } else {
                ffi::ckd_free(phones.cast());
                true
            }
        }
    }

    fn set_allphone(&mut self, name: &CStr, lm: &str) -> Result<(), SttError> {
        let lm = cstring(lm)?;
        // SAFETY: ps is live; the file is read during the call.
        if unsafe { ffi::ps_set_allphone_file(self.ps, name.as_ptr(), lm.as_ptr()) } < 0 {
            return Err(SttError::Init("phone loop search".into()));
        }
        Ok(())
    }

    fn set_jsgf(&mut self, name: &CStr, jsgf: &str) -> Result<(), SttError> {
        let text = cstring(jsgf)?;
        // SAFETY: ps is live; the grammar text is parsed during the call.
        if unsafe { ffi::ps_set_jsgf_string(self.ps, name.as_ptr(), text.as_ptr()) } < 0 {
            return Err(SttError::Grammar(jsgf.to_string()));
        }
        Ok(())
    }

    fn set_search(&mut self, name: &CStr) -> Result<(), SttError> {
        // SAFETY: ps is live and no utterance is open between decodes.
        if unsafe { ffi::ps_set_search(self.ps, name.as_ptr()) } < 0 {
            return Err(SttError::Decode("ps_set_search"));
        }
        Ok(())
    }

    /// Decodes a whole utterance with the current search: its segments (words, fillers and
    /// silences, or phones for the phone loop), empty when the search found no path.
    fn decode(&mut self, pcm: &[i16]) -> Result<Vec<Segment>, SttError> {
        let mut segments = Vec::new();
        // SAFETY: ps is live; pcm outlives ps_process_raw; segment words are owned by the
        // decoder and copied before the iterator moves on; ps_seg_next frees the iterator
        // when it returns NULL.
        unsafe {
            if ffi::ps_start_utt(self.ps) < 0 {
                return Err(SttError::Decode("ps_start_utt"));
            }
            if ffi::ps_process_raw(self.ps, pcm.as_ptr(), pcm.len(), 0, 1) < 0 {
                ffi::ps_end_utt(self.ps);
                return Err(SttError::Decode("ps_process_raw"));
            }
            if ffi::ps_end_utt(self.ps) < 0 {
                return Err(SttError::Decode("ps_end_utt"));
            }
            let mut seg = ffi::ps_seg_iter(self.ps);
            while !seg.is_null() {
                let (mut ascr, mut lscr, mut lback) = (0, 0, 0);
                ffi::ps_seg_prob(seg, &mut ascr, &mut lscr, &mut lback);
                let (mut start, mut end) = (0, 0);
                ffi::ps_seg_frames(seg, &mut start, &mut end);
                let word = ffi::ps_seg_word(seg);
                let word = if word.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(word).to_string_lossy().into_owned()
                };
                segments.push(Segment {
                    word,
                    frames: (start.max(0) as u32)..(end.max(start).max(0) as u32 + 1),
                    acoustic: ascr,
                });
                seg = ffi::ps_seg_next(seg);
            }
        }
        Ok(segments)
    }
}

/// One word (or phone) of a decoded path.
#[derive(Debug, Clone)]
struct Segment {
    word: String,
    /// 10 ms feature frames it spans.
    frames: std::ops::Range<u32>,
    /// Acoustic log-likelihood, in PocketSphinx's shifted log units.
    acoustic: i32,
}

impl Segment {
    /// Silence, noise and speech fillers (`<s>`, `<sil>`, `SIL`, `[NOISE]`, `+SPN+` ...).
    fn is_filler(&self) -> bool {
        let w = self.word.as_str();
        w.is_empty() || w == "SIL" || w.starts_with(['<', '[', '+'])
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: ps came from ps_init and is freed once.
        unsafe {
            ffi::ps_free(self.ps);
        }
    }
}

/// The few PocketSphinx 5prealpha / SphinxBase functions used (Debian bookworm's
/// `libpocketsphinx3`, `libsphinxbase3`); the libraries are in the default search path.
mod ffi {
    use super::{c_char, c_int};

    #[repr(C)]
    pub struct PsDecoder {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct CmdLn {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct PsSeg {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct Arg {
        _private: [u8; 0],
    }

    #[link(name = "pocketsphinx")]
    unsafe extern "C" {
        pub fn ps_args() -> *const Arg;
        pub fn ps_init(config: *mut CmdLn) -> *mut PsDecoder;
        pub fn ps_free(ps: *mut PsDecoder) -> c_int;
        pub fn ps_lookup_word(ps: *mut PsDecoder, word: *const c_char) -> *mut c_char;
        pub fn ps_set_jsgf_string(
            ps: *mut PsDecoder,
            name: *const c_char,
            jsgf: *const c_char,
        ) -> c_int;
        pub fn ps_set_allphone_file(
            ps: *mut PsDecoder,
            name: *const c_char,
            path: *const c_char,
        ) -> c_int;
        pub fn ps_set_search(ps: *mut PsDecoder, name: *const c_char) -> c_int;
        pub fn ps_start_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_process_raw(
            ps: *mut PsDecoder,
            data: *const i16,
            n_samples: usize,
            no_search: c_int,
            full_utt: c_int,
        ) -> c_int;
        pub fn ps_end_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_seg_iter(ps: *mut PsDecoder) -> *mut PsSeg;
        pub fn ps_seg_next(seg: *mut PsSeg) -> *mut PsSeg;
        pub fn ps_seg_word(seg: *mut PsSeg) -> *const c_char;
        pub fn ps_seg_frames(seg: *mut PsSeg, out_sf: *mut c_int, out_ef: *mut c_int);
        pub fn ps_seg_prob(
            seg: *mut PsSeg,
            out_ascr: *mut i32,
            out_lscr: *mut i32,
            out_lback: *mut i32,
        ) -> i32;
    }

    #[link(name = "sphinxbase")]
    unsafe extern "C" {
        pub fn cmd_ln_parse_r(
            inout: *mut CmdLn,
            defn: *const Arg,
            argc: i32,
            argv: *mut *mut c_char,
            strict: i32,
        ) -> *mut CmdLn;
        pub fn cmd_ln_free_r(config: *mut CmdLn) -> c_int;
        pub fn ckd_free(ptr: *mut std::ffi::c_void);
        /// `FILE *`; NULL turns logging off.
        pub fn err_set_logfp(stream: *mut std::ffi::c_void);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_normalise_to_dictionary_words() {
        assert_eq!(normalise("Uh-huh."), ["uh-huh"]);
        assert_eq!(
            normalise("  Yes, I'm  INTERESTED! "),
            ["yes", "i'm", "interested"]
        );
        assert!(normalise("?!").is_empty());
    }
}
