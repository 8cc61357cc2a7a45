//! The embedded offline synthesizer: CMU Flite in-process (Debian `flite1-dev`, BSD-style
//! licence), through a few hand-written `extern "C"` declarations.
//!
//! Two voices ship with Debian's package: `kal` (a diphone voice, 8 kHz natively, the
//! telephone band) and `slt` (a clustergen voice, 16 kHz). Flite keeps global state (the voice
//! list, the lexicon, feature tables) and is not thread-safe around registration, so the
//! library is initialised and each voice registered once ([`OnceLock`]), and every synthesis
//! runs under one process-wide [`Mutex`].
//!
//! [`FliteTts`] turns one text into mono PCM at the rate asked for; [`FliteTtsStage`] is the
//! pipeline's [`Tts`] stage (registered as `flite`, parameter `voice = "kal" | "slt"`): each
//! pushed text is split into sentences, each sentence synthesized when the previous one's audio
//! has been taken, and delivered in 20 ms frames. The frame during which a word ends carries
//! `text_done` up to that word (Flite's segment timings, read by `flite_words`), so a barge-in
//! cuts the history at the last whole word heard; each sentence's last frame carries its end.

use std::collections::VecDeque;
use std::ffi::{CString, c_char, c_int};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use thiserror::Error;

pub use super::flite_words::{TimedSpeech, WordEnd};
use super::flite_words::{Utterance, place_tokens};
use super::registry::{BuildError, StageParams};
use super::sentences::SentenceSplitter;
use super::stages::{StageError, Tts, TtsAudio, TtsSession};
use crate::codec::resample::{RATES, resample_all};

/// Which of Debian's Flite voices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FliteVoice {
    /// `cmu_us_kal`: male diphone voice, 8 kHz native; light and fast.
    Kal,
    /// `cmu_us_slt`: female clustergen voice, 16 kHz native; smoother, slower to synthesize.
    Slt,
}

impl FliteVoice {
    /// The name used in agent config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kal => "kal",
            Self::Slt => "slt",
        }
    }

    /// The voice named `name` in agent config (`kal`, `slt`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "kal" => Some(Self::Kal),
            "slt" => Some(Self::Slt),
            _ => None,
        }
    }
}

/// Why synthesis failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TtsError {
    /// Flite could not register the voice.
    #[error("flite: voice {0} could not be registered")]
    Voice(&'static str),
    /// The output rate is not one the resampler handles.
    #[error("flite: unsupported output rate {0} Hz (8000, 16000, 24000 or 48000)")]
    UnsupportedRate(u32),
    /// Flite returned no wave.
    #[error("flite: synthesis failed for {0:?}")]
    Synthesis(String),
    /// The wave could not be converted to the output rate.
    #[error("flite: cannot resample {from} Hz to {to} Hz")]
    Resample {
        /// Flite's native rate.
        from: u32,
        /// The rate asked for.
        to: u32,
    },
}

/// A registered voice pointer; Flite voices are immutable after registration and only used
/// under [`SYNTH_LOCK`].
#[derive(Clone, Copy)]
struct VoicePtr(*mut ffi::CstVoice);

// SAFETY: the pointer is only dereferenced by Flite while `SYNTH_LOCK` is held.
unsafe impl Send for VoicePtr {}
// SAFETY: as above; sharing the pointer value itself is harmless.
unsafe impl Sync for VoicePtr {}

/// Serialises every call into Flite (registration and synthesis).
static SYNTH_LOCK: Mutex<()> = Mutex::new(());
static KAL: OnceLock<Option<VoicePtr>> = OnceLock::new();
static SLT: OnceLock<Option<VoicePtr>> = OnceLock::new();
static INIT: OnceLock<()> = OnceLock::new();

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves Flite's state as good as it was (synthesis does
    // not mutate the voice), so a poisoned lock is still usable.
    SYNTH_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn voice_ptr(voice: FliteVoice) -> Result<VoicePtr, TtsError> {
    let cell = match voice {
        FliteVoice::Kal => &KAL,
        FliteVoice::Slt => &SLT,
    };
    let ptr = cell.get_or_init(|| {
        let _guard = lock();
        INIT.get_or_init(|| {
            // SAFETY: called once, under the lock, before any other Flite call.
            unsafe { ffi::flite_init() };
        });
        // SAFETY: registration is serialised by the lock and the OnceLock; a NULL voxdir
        // means the compiled-in voice data. The register functions also set up the US English
        // language and the CMU lexicon the voices use.
        let v = unsafe {
            match voice {
                FliteVoice::Kal => ffi::register_cmu_us_kal(std::ptr::null()),
                FliteVoice::Slt => ffi::register_cmu_us_slt(std::ptr::null()),
            }
        };
        (!v.is_null()).then_some(VoicePtr(v))
    });
    ptr.ok_or(TtsError::Voice(voice.name()))
}

/// Makes text safe to hand to Flite: control characters become spaces, typographic
/// punctuation becomes ASCII, other non-ASCII characters (which the US English front end
/// cannot pronounce) become spaces, and runs of spaces collapse.
pub fn sanitize(text: &str) -> String {
    sanitize_mapped(text).0
}

/// [`sanitize`], with, for each byte of the result, the end (byte offset in `text`) of the
/// character it came from.
fn sanitize_mapped(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        let end = at + c.len_utf8();
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{00AB}' | '\u{00BB}' => '"',
            '\u{2010}'..='\u{2015}' => '-',
            '\u{2026}' => {
                out.push_str("...");
                map.extend([end; 3]);
                continue;
            }
            c if c.is_ascii_graphic() => c,
            _ => ' ',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
        map.push(end);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    map.truncate(trimmed);
    (out, map)
}

/// Copies a Flite wave's first channel: `(native rate, samples)`.
///
/// # Safety
/// `w` is a live wave whose `samples` hold `num_samples * num_channels` values.
unsafe fn copy_wave(w: &ffi::CstWave) -> (u32, Vec<i16>) {
    let n = usize::try_from(w.num_samples).unwrap_or(0);
    let ch = usize::try_from(w.num_channels).unwrap_or(1).max(1);
    let rate = u32::try_from(w.sample_rate).unwrap_or(0);
    let pcm = if n == 0 || w.samples.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract above.
        let all = unsafe { std::slice::from_raw_parts(w.samples, n * ch) };
        if ch == 1 {
            all.to_vec()
        } else {
            all.chunks_exact(ch).map(|f| f[0]).collect()
        }
    };
    (rate, pcm)
}

/// `pcm` at `native` Hz converted to `rate` Hz.
fn to_rate(pcm: Vec<i16>, native: u32, rate: u32) -> Result<Vec<i16>, TtsError> {
    if pcm.is_empty() || native == rate {
        return Ok(pcm);
    }
    resample_all(&pcm, native, rate).map_err(|_| TtsError::Resample {
        from: native,
        to: rate,
    })
}

/// An in-process Flite synthesizer for one voice.
#[derive(Debug, Clone, Copy)]
pub struct FliteTts {
    voice: FliteVoice,
    ptr: VoicePtr,
}

impl std::fmt::Debug for VoicePtr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoicePtr")
    }
}

impl FliteTts {
    /// Registers `voice` (once per process) and returns a handle to it.
    pub fn new(voice: FliteVoice) -> Result<Self, TtsError> {
        Ok(Self {
            voice,
            ptr: voice_ptr(voice)?,
        })
    }

    /// The voice.
    pub fn voice(&self) -> FliteVoice {
        self.voice
    }

    /// Speaks `text` as mono 16-bit PCM at `rate` Hz (8000, 16000, 24000 or 48000). Text with
    /// nothing pronounceable gives empty audio.
    pub fn synthesize(&self, text: &str, rate: u32) -> Result<Vec<i16>, TtsError> {
        let Some((clean, _, c_text)) = prepare(text, rate)? else {
            return Ok(Vec::new());
        };
        let (native, pcm) = {
            let _guard = lock();
            // SAFETY: the voice was registered and Flite is only entered under the lock; the
            // wave returned is owned by us and freed below, after copying its samples.
            unsafe {
                let wave = ffi::flite_text_to_wave(c_text.as_ptr(), self.ptr.0);
                if wave.is_null() {
                    return Err(TtsError::Synthesis(clean));
                }
                let copied = copy_wave(&*wave);
                ffi::delete_wave(wave);
                copied
            }
        };
        to_rate(pcm, native, rate)
    }

    /// Speaks `text` like [`FliteTts::synthesize`] and says where each word ends, in `text`
    /// and in the audio, from Flite's own segment timings.
    pub fn synthesize_words(&self, text: &str, rate: u32) -> Result<TimedSpeech, TtsError> {
        let Some((clean, map, c_text)) = prepare(text, rate)? else {
            return Ok(TimedSpeech::default());
        };
        let (native, pcm, tokens) = {
            let _guard = lock();
            // SAFETY: the voice was registered and the lock is held until the utterance (and
            // the wave it owns) is dropped at the end of this block.
            let utt = unsafe { Utterance::synth(&c_text, self.ptr.0) };
            let Some(utt) = utt else {
                return Err(TtsError::Synthesis(clean));
            };
            let Some(wave) = utt.wave() else {
                return Err(TtsError::Synthesis(clean));
            };
            // SAFETY: the wave is Flite's own, alive with the utterance.
            let (native, pcm) = unsafe { copy_wave(wave) };
            (native, pcm, utt.tokens())
        };
        let pcm = to_rate(pcm, native, rate)?;
        let words = place_tokens(&clean, &tokens)
            .into_iter()
            .filter_map(|(end, secs)| {
                let text_end = *map.get(end.checked_sub(1)?)?;
                let sample = (f64::from(secs) * f64::from(rate)).round();
                // `as` saturates: a negative time is the start, a huge one the end.
                let sample = (sample as usize).min(pcm.len());
                Some(WordEnd { text_end, sample })
            })
            .collect();
        Ok(TimedSpeech { pcm, words })
    }
}

/// Checks `rate` and cleans `text` for Flite: `(clean text, its byte map, C string)`, or
/// `None` when nothing in it is pronounceable.
fn prepare(text: &str, rate: u32) -> Result<Option<(String, Vec<usize>, CString)>, TtsError> {
    if !RATES.contains(&rate) {
        return Err(TtsError::UnsupportedRate(rate));
    }
    let (clean, map) = sanitize_mapped(text);
    if !clean.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    // `sanitize` removed every control character, NUL included.
    let c_text = CString::new(clean.as_str()).map_err(|_| TtsError::Synthesis(clean.clone()))?;
    Ok(Some((clean, map, c_text)))
}

/// The `flite` pipeline stage.
#[derive(Debug, Clone, Copy)]
pub struct FliteTtsStage {
    tts: FliteTts,
}

impl FliteTtsStage {
    /// A stage speaking with `voice`.
    pub fn new(voice: FliteVoice) -> Result<Self, TtsError> {
        Ok(Self {
            tts: FliteTts::new(voice)?,
        })
    }

    /// Reads `voice` (`kal`, the default, or `slt`).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let name = p.string("voice")?.unwrap_or_else(|| "kal".to_owned());
        let bad = |reason: String| BuildError::BadParam {
            stage: "tts flite".to_owned(),
            key: "voice".to_owned(),
            reason,
        };
        let voice = FliteVoice::from_name(&name)
            .ok_or_else(|| bad(format!("{name:?} is not kal or slt")))?;
        Self::new(voice).map_err(|e| bad(e.to_string()))
    }
}

impl Tts for FliteTtsStage {
    fn start(&mut self, rate: u32) -> Result<Box<dyn TtsSession>, StageError> {
        if !RATES.contains(&rate) {
            return Err(StageError::Unsupported {
                stage: STAGE.to_owned(),
                reason: format!("sample rate {rate} (8000, 16000, 24000 or 48000)"),
            });
        }
        Ok(Box::new(FliteSession {
            tts: self.tts,
            rate,
            frame: (rate / 50) as usize,
            text_len: 0,
            sentences: VecDeque::new(),
            frames: VecDeque::new(),
            finished: false,
            closed: false,
        }))
    }
}

const STAGE: &str = "tts flite";

/// A sentence waiting to be synthesized.
#[derive(Debug)]
struct Pending {
    text: String,
    /// Where `text` starts in the pushed text, when it was found there (word marks need it).
    base: Option<usize>,
    /// Bytes of pushed text spoken once this sentence has played.
    text_done: usize,
}

/// A session of [`FliteTtsStage`].
#[derive(Debug)]
struct FliteSession {
    tts: FliteTts,
    rate: u32,
    /// Samples per 20 ms frame.
    frame: usize,
    /// Bytes of text pushed so far.
    text_len: usize,
    /// Sentences not synthesized yet.
    sentences: VecDeque<Pending>,
    /// Frames of the current sentence not delivered yet.
    frames: VecDeque<TtsAudio>,
    finished: bool,
    closed: bool,
}

impl FliteSession {
    /// Synthesizes the next pending sentence into 20 ms frames.
    fn synthesize_next(&mut self) -> Option<Result<(), StageError>> {
        let p = self.sentences.pop_front()?;
        let speech = match self.tts.synthesize_words(&p.text, self.rate) {
            Ok(speech) => speech,
            Err(e) => {
                return Some(Err(StageError::Provider {
                    stage: STAGE.to_owned(),
                    reason: e.to_string(),
                }));
            }
        };
        self.frames
            .extend(speech.frames(self.frame, p.base, p.text_done));
        Some(Ok(()))
    }
}

impl TtsSession for FliteSession {
    fn push_text(&mut self, text: &str) -> Result<(), StageError> {
        if self.finished || self.closed {
            return Err(StageError::Closed {
                stage: STAGE.to_owned(),
            });
        }
        let start = self.text_len;
        self.text_len += text.len();
        // Each push is spoken as a unit (the turn engine already pushes sentences), split
        // further at sentence boundaries inside it so text_done advances per sentence.
        let mut splitter = SentenceSplitter::default();
        let mut pieces = splitter.push(text);
        pieces.extend(splitter.finish());
        let mut cursor = 0;
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let found = text[cursor..].find(piece.as_str()).map(|at| cursor + at);
            let end = if i + 1 == count {
                text.len()
            } else {
                found.map_or(cursor, |at| at + piece.len())
            };
            cursor = end;
            self.sentences.push_back(Pending {
                text: piece,
                base: found.map(|at| start + at),
                text_done: start + end,
            });
        }
        if count == 0 && !text.is_empty() {
            self.sentences.push_back(Pending {
                text: String::new(),
                base: None,
                text_done: self.text_len,
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.finished = true;
        Ok(())
    }

    fn cancel(&mut self) {
        self.closed = true;
        self.sentences.clear();
        self.frames.clear();
    }

    fn poll_audio(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<TtsAudio, StageError>>> {
        if self.closed {
            return Poll::Ready(None);
        }
        if self.frames.is_empty() {
            match self.synthesize_next() {
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(())) => {}
                None if self.finished => return Poll::Ready(None),
                None => return Poll::Pending,
            }
        }
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Poll::Pending,
        }
    }
}

/// The few Flite 2.2 functions used (Debian's `libflite1`); the libraries are in the default
/// search path. The voice libraries pull in `flite_usenglish` and `flite_cmulex` themselves.
pub(super) mod ffi {
    use super::{c_char, c_int};

    /// `cst_voice` (opaque).
    #[repr(C)]
    pub struct CstVoice {
        _private: [u8; 0],
    }

    /// `cst_wave` from `cst_wave.h`.
    #[repr(C)]
    pub struct CstWave {
        pub kind: *const c_char,
        pub sample_rate: c_int,
        pub num_samples: c_int,
        pub num_channels: c_int,
        pub samples: *mut i16,
    }

    #[link(name = "flite")]
    unsafe extern "C" {
        pub fn flite_init() -> c_int;
        pub fn flite_text_to_wave(text: *const c_char, voice: *mut CstVoice) -> *mut CstWave;
        pub fn delete_wave(wave: *mut CstWave);
    }

    #[link(name = "flite_usenglish")]
    #[link(name = "flite_cmulex")]
    #[link(name = "flite_cmu_us_kal")]
    unsafe extern "C" {
        pub fn register_cmu_us_kal(voxdir: *const c_char) -> *mut CstVoice;
    }

    #[link(name = "flite_cmu_us_slt")]
    unsafe extern "C" {
        pub fn register_cmu_us_slt(voxdir: *const c_char) -> *mut CstVoice;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn rms(pcm: &[i16]) -> f64 {
        (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
    }

    #[test]
    fn sanitize_removes_what_flite_dislikes() {
        assert_eq!(sanitize("a\0b\n\tc\u{7f}"), "a b c");
        assert_eq!(
            sanitize("it\u{2019}s \u{201C}ok\u{201D}\u{2026}"),
            "it's \"ok\"..."
        );
        assert_eq!(sanitize("caf\u{e9} \u{1F600} x"), "caf x");
        assert_eq!(sanitize("  \r\n "), "");
    }

    #[test]
    fn synthesizes_speech_at_both_rates() {
        for voice in [FliteVoice::Kal, FliteVoice::Slt] {
            let tts = FliteTts::new(voice).unwrap();
            for rate in [8000, 16000] {
                let pcm = tts.synthesize("Yes, I am interested.", rate).unwrap();
                let secs = pcm.len() as f64 / f64::from(rate);
                assert!((0.5..4.0).contains(&secs), "{voice:?} {rate}: {secs} s");
                assert!(rms(&pcm) > 300.0, "{voice:?} {rate}: rms {}", rms(&pcm));
            }
        }
    }

    /// `(frame index, text_done)` of every frame carrying a mark.
    fn session_marks(voice: FliteVoice, rate: u32, text: &str) -> (usize, Vec<(usize, usize)>) {
        let mut s = FliteTtsStage::new(voice).unwrap().start(rate).unwrap();
        s.push_text(text).unwrap();
        s.finish().unwrap();
        let mut frames = Vec::new();
        while let Poll::Ready(Some(f)) = s.poll_audio(&mut cx()) {
            frames.push(f.unwrap());
        }
        let marks = frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.text_done.map(|d| (i, d)))
            .collect();
        (frames.len(), marks)
    }

    #[test]
    fn each_word_is_marked_on_the_frame_where_it_ends() {
        let text = "Hello there, how are you today?";
        let (frames, mut marks) = session_marks(FliteVoice::Kal, 8000, text);
        // One mark per word, through the word and its punctuation; "today?" ends the text.
        let (last_frame, end) = marks.pop().unwrap();
        assert_eq!((last_frame, end), (frames - 1, text.len()));
        let done: Vec<usize> = marks.iter().map(|m| m.1).collect();
        assert_eq!(done, [5, 12, 16, 20, 24, text.len()]);
        let ms: Vec<usize> = marks.iter().map(|m| (m.0 + 1) * 20).collect();
        assert!(ms.windows(2).all(|w| w[0] < w[1]), "{ms:?}");
        let total = frames * 20;
        assert!(ms[0] > 100 && ms[0] < total / 2, "{ms:?} of {total} ms");
        // "today?" ends before the trailing pause.
        assert!(*ms.last().unwrap() < total, "{ms:?} of {total} ms");
        // The same words at 16 kHz (resampled from kal's 8 kHz) end at the same times.
        let (_, mut wide) = session_marks(FliteVoice::Kal, 16000, text);
        wide.pop();
        assert_eq!(wide.iter().map(|m| m.1).collect::<Vec<_>>(), done);
        for (a, b) in marks.iter().zip(&wide) {
            assert!(a.0.abs_diff(b.0) <= 1, "{marks:?} vs {wide:?}");
        }
    }

    #[test]
    fn word_ends_match_the_sound() {
        // Flite pauses at the comma: right after "there," the audio is near silence, right
        // before it is speech. A timing off by more than a few tens of ms fails this.
        for voice in [FliteVoice::Kal, FliteVoice::Slt] {
            let tts = FliteTts::new(voice).unwrap();
            let speech = tts
                .synthesize_words("Hello there, how are you today?", 8000)
                .unwrap();
            let at = speech.words[1].sample;
            let (before, after) = (
                rms(&speech.pcm[at - 480..at]),
                rms(&speech.pcm[at..at + 480]),
            );
            assert!(before > 10.0 * after, "{voice:?}: {before} then {after}");
        }
    }

    #[test]
    fn word_ends_follow_the_audio_and_map_back_through_sanitizing() {
        for voice in [FliteVoice::Kal, FliteVoice::Slt] {
            let tts = FliteTts::new(voice).unwrap();
            let text = "It\u{2019}s  3.5 dollars\u{2026} ok?";
            let speech = tts.synthesize_words(text, 16000).unwrap();
            let ends: Vec<usize> = speech.words.iter().map(|w| w.text_end).collect();
            let expected = [
                "It\u{2019}s".len(),
                "It\u{2019}s  3.5".len(),
                "It\u{2019}s  3.5 dollars\u{2026}".len(),
                text.len(),
            ];
            assert_eq!(ends, expected, "{voice:?}");
            let samples: Vec<usize> = speech.words.iter().map(|w| w.sample).collect();
            assert!(samples.windows(2).all(|w| w[0] < w[1]), "{samples:?}");
            // "3.5" is several words long: more than a third of a second.
            assert!(samples[1] - samples[0] > 16000 / 3, "{samples:?}");
            // The last word ends before the trailing pause, inside the audio.
            let len = speech.pcm.len();
            assert!(
                samples[3] <= len && samples[3] > len / 2,
                "{samples:?} of {len}"
            );
            // The audio is as long as what `synthesize` gives.
            let plain = tts.synthesize(text, 16000).unwrap().len();
            assert_eq!(len, plain, "{voice:?}");
        }
    }

    #[test]
    fn hostile_text_does_not_crash() {
        let tts = FliteTts::new(FliteVoice::Kal).unwrap();
        assert!(tts.synthesize("", 8000).unwrap().is_empty());
        assert!(tts.synthesize("\0\n\t ...!?", 8000).unwrap().is_empty());
        for text in [
            "\u{1F600}\u{200B} hi \u{0}there",
            "$$$ 3.5 %% @@ ## 12:30pm 1-800-555-0100",
            "a",
            &"word ".repeat(200),
        ] {
            tts.synthesize(text, 8000).unwrap();
            let speech = tts.synthesize_words(text, 8000).unwrap();
            let ends: Vec<usize> = speech.words.iter().map(|w| w.text_end).collect();
            assert!(ends.windows(2).all(|w| w[0] < w[1]), "{text:?}: {ends:?}");
            assert!(ends.last().is_none_or(|&e| e <= text.len()));
            assert!(speech.words.iter().all(|w| w.sample <= speech.pcm.len()));
        }
        assert_eq!(
            tts.synthesize_words("...", 8000),
            Ok(TimedSpeech::default())
        );
        assert_eq!(
            tts.synthesize("hi", 11025),
            Err(TtsError::UnsupportedRate(11025))
        );
    }

    #[test]
    fn session_streams_20ms_frames_per_sentence_and_cancels() {
        let mut stage = FliteTtsStage::new(FliteVoice::Kal).unwrap();
        let mut s = stage.start(8000).unwrap();
        assert_eq!(s.poll_audio(&mut cx()), Poll::Pending);
        let text = "Hello there. How are you?";
        s.push_text(text).unwrap();
        s.push_text(" Bye.").unwrap();
        s.finish().unwrap();
        let mut frames = Vec::new();
        while let Poll::Ready(Some(f)) = s.poll_audio(&mut cx()) {
            frames.push(f.unwrap());
        }
        assert!(frames.iter().all(|f| f.samples.len() == 160));
        let mut done: Vec<usize> = frames.iter().filter_map(|f| f.text_done).collect();
        // "you?" and "Bye." end their pushes: the pushes' last frames repeat those marks.
        done.dedup();
        // Word ends: "Hello", "there." (ending the first sentence), "How", "are", "you?", "Bye.".
        assert_eq!(done, [5, 12, 16, 20, text.len(), text.len() + 5]);
        assert_eq!(frames.last().unwrap().text_done, Some(text.len() + 5));
        assert!(frames.len() > 50, "{} frames", frames.len());

        let mut s = stage.start(16000).unwrap();
        s.push_text("First sentence here. Second sentence here.")
            .unwrap();
        let first = match s.poll_audio(&mut cx()) {
            Poll::Ready(Some(Ok(f))) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.samples.len(), 320);
        s.cancel();
        assert_eq!(s.poll_audio(&mut cx()), Poll::Ready(None));
        assert!(s.push_text("x").is_err());
        assert!(stage.start(11025).is_err());
    }
}
