//! Cuts a provider's audio (any chunk sizes, at the provider's rate) into 20 ms frames at the
//! session rate and hangs text-progress marks on the frame that finishes playing them.
//!
//! Sans-IO: the network drivers of the remote synthesizers (`openai`, `elevenlabs`) feed it
//! samples as they arrive, place marks in provider-sample time ("the text up to byte 12 is
//! spoken once sample 4800 has played"), and call [`TtsFramer::flush`] at a boundary (end of
//! a request, end of the session, a pause in the stream). The resampler's fixed delay is
//! trimmed, so a mark lands on the frame that holds its sample.

use std::collections::VecDeque;

use super::stages::TtsAudio;
use crate::codec::CodecError;
use crate::codec::resample::Resampler;

/// Frames provider audio for the session, carrying `text_done` marks.
#[derive(Debug)]
pub struct TtsFramer {
    resampler: Resampler,
    /// Provider rate.
    from: u32,
    /// Session rate.
    to: u32,
    /// Provider samples short of a full 20 ms input frame.
    pending: Vec<i16>,
    /// Scratch output of one resampler call.
    scratch: Vec<i16>,
    /// Session-rate samples not yet cut into a frame.
    out: Vec<i16>,
    /// Session-rate samples still to drop (the resampler's delay) since the last flush.
    skip: usize,
    /// Real provider samples pushed since the last flush.
    native_total: u64,
    /// Session-rate samples already emitted as frames since the last flush.
    emitted: u64,
    /// `(session-rate sample position, text_done)`, positions since the last flush, in order.
    marks: VecDeque<(u64, usize)>,
    /// The highest `text_done` emitted so far (a flush adds no silent frame to repeat it).
    last_done: Option<usize>,
}

impl TtsFramer {
    /// A framer from `from` Hz provider audio to `to` Hz session audio (both in the
    /// resampler's rates).
    pub fn new(from: u32, to: u32) -> Result<Self, CodecError> {
        let resampler = Resampler::new(from, to)?;
        let skip = resampler.delay();
        Ok(Self {
            pending: Vec::with_capacity(resampler.input_frame()),
            scratch: Vec::with_capacity(resampler.output_frame()),
            out: Vec::new(),
            skip,
            resampler,
            from,
            to,
            native_total: 0,
            emitted: 0,
            marks: VecDeque::new(),
            last_done: None,
        })
    }

    /// Provider samples pushed since the last flush (where the next sample will sit).
    pub fn position(&self) -> u64 {
        self.native_total
    }

    /// Whether audio is held back waiting for more (a flush would emit something).
    pub fn has_pending(&self) -> bool {
        self.native_total > 0 || !self.marks.is_empty()
    }

    /// Reports `text_done` once provider sample position `at` (since the last flush) has played.
    pub fn mark(&mut self, at: u64, text_done: usize) {
        let pos = (at * u64::from(self.to)).div_ceil(u64::from(self.from));
        let pos = match self.marks.back() {
            Some(&(last, _)) if last > pos => last,
            _ => pos,
        };
        self.marks.push_back((pos, text_done));
    }

    /// Adds provider samples; complete session frames are appended to `frames`.
    pub fn push(&mut self, samples: &[i16], frames: &mut Vec<TtsAudio>) -> Result<(), CodecError> {
        self.native_total += samples.len() as u64;
        let fin = self.resampler.input_frame();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (fin - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == fin {
                self.run_resampler()?;
                self.pending.clear();
            }
        }
        self.cut_frames(frames);
        Ok(())
    }

    /// Emits everything held back (zero-padded to whole frames) with every pending mark, then
    /// starts afresh; with a new mark but no audio left, one silent frame carries it.
    pub fn flush(&mut self, frames: &mut Vec<TtsAudio>) -> Result<(), CodecError> {
        let wanted = (self.native_total * u64::from(self.to)).div_ceil(u64::from(self.from));
        let fin = self.resampler.input_frame();
        let before = frames.len();
        if self.native_total > 0 {
            while self.emitted + (self.out.len() as u64) < wanted {
                self.pending.resize(fin, 0);
                self.run_resampler()?;
                self.pending.clear();
            }
            let keep = usize::try_from(wanted - self.emitted).unwrap_or(usize::MAX);
            self.out.truncate(keep);
            self.cut_frames(frames);
            if !self.out.is_empty() {
                let frame = self.resampler.output_frame();
                self.out.resize(frame, 0);
                self.cut_frames(frames);
            }
        }
        if let Some(&(_, done)) = self.marks.back() {
            if frames.len() == before {
                // A mark already carried by a frame that is out needs no silent frame.
                if self.last_done.is_none_or(|last| last < done) {
                    self.last_done = Some(done);
                    frames.push(TtsAudio {
                        samples: vec![0; self.resampler.output_frame()],
                        text_done: Some(done),
                    });
                }
            } else if let Some(last) = frames.last_mut() {
                last.text_done = Some(done);
                self.last_done = Some(done);
            }
        }
        self.marks.clear();
        self.pending.clear();
        self.out.clear();
        self.resampler.reset();
        self.skip = self.resampler.delay();
        self.native_total = 0;
        self.emitted = 0;
        Ok(())
    }

    fn run_resampler(&mut self) -> Result<(), CodecError> {
        self.resampler.process(&self.pending, &mut self.scratch)?;
        let drop = self.skip.min(self.scratch.len());
        self.skip -= drop;
        self.out.extend_from_slice(&self.scratch[drop..]);
        Ok(())
    }

    fn cut_frames(&mut self, frames: &mut Vec<TtsAudio>) {
        let frame = self.resampler.output_frame();
        let mut start = 0;
        while self.out.len() - start >= frame {
            let end_pos = self.emitted + frame as u64;
            let mut done = None;
            while let Some(&(pos, d)) = self.marks.front() {
                if pos > end_pos {
                    break;
                }
                done = Some(d);
                self.last_done = Some(d);
                self.marks.pop_front();
            }
            frames.push(TtsAudio {
                samples: self.out[start..start + frame].to_vec(),
                text_done: done,
            });
            self.emitted = end_pos;
            start += frame;
        }
        self.out.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_chunks_come_out_as_whole_frames_of_the_right_length() {
        let mut f = TtsFramer::new(24000, 8000).unwrap();
        let mut frames = Vec::new();
        let signal: Vec<i16> = (0..24000 + 77).map(|i| (i % 100) as i16).collect();
        for chunk in signal.chunks(333) {
            f.push(chunk, &mut frames).unwrap();
        }
        f.mark(f.position(), 42);
        f.flush(&mut frames).unwrap();
        assert!(frames.iter().all(|a| a.samples.len() == 160));
        // 1.0032 s at 8 kHz = 8026 samples: 51 frames, the last padded.
        assert_eq!(frames.len(), 51);
        let done: Vec<_> = frames.iter().filter_map(|a| a.text_done).collect();
        assert_eq!(done, [42]);
        assert_eq!(frames.last().unwrap().text_done, Some(42));
    }

    #[test]
    fn a_mark_lands_on_the_frame_playing_its_sample() {
        let mut f = TtsFramer::new(16000, 16000).unwrap();
        let mut frames = Vec::new();
        f.mark(1000, 5); // in frame 3 (samples 960..1280)
        f.mark(1280, 9); // last sample of frame 3 is 1279: frame 3 ends at 1280
        f.push(&vec![1; 3200], &mut frames).unwrap();
        let done: Vec<_> = frames.iter().map(|a| a.text_done).collect();
        assert_eq!(done[3], Some(9));
        assert!(done.iter().enumerate().all(|(i, d)| i == 3 || d.is_none()));
    }

    #[test]
    fn flush_without_audio_gives_one_silent_frame_with_the_mark() {
        let mut f = TtsFramer::new(24000, 16000).unwrap();
        let mut frames = Vec::new();
        f.flush(&mut frames).unwrap();
        assert!(frames.is_empty());
        f.mark(0, 3);
        assert!(f.has_pending());
        f.flush(&mut frames).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0].samples.len(), frames[0].text_done),
            (320, Some(3))
        );
        assert!(!f.has_pending());
        // A mark already carried by a frame that is out adds nothing.
        f.mark(0, 3);
        f.flush(&mut frames).unwrap();
        assert_eq!(frames.len(), 1);
    }
}
