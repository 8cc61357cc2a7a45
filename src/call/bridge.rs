//! The media side of a bridged transfer: two [`BridgeApp`]s, one on each leg, pass each
//! other's caller frames (resampled when the legs' rates differ) and key presses, and
//! [`RingbackApp`] plays a ringback tone to the caller while the new leg rings.
//!
//! The legs may run on different media workers, so frames cross over bounded channels. Each
//! side plays what arrived on its own clock and keeps at most [`MAX_LAG_FRAMES`] queued: when
//! the two clocks drift, the extra frames are dropped rather than adding delay.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use crate::codec::resample::Resampler;
use crate::leg::{AppIo, LegEvent, MediaApp};

/// Frames a side keeps queued ahead of its wire; beyond this, arriving frames are dropped.
pub const MAX_LAG_FRAMES: usize = 3;
/// Frames in flight between the two legs (a worker stalling longer loses the excess).
const CHANNEL_FRAMES: usize = 25;

/// What crosses from one leg to the other.
#[derive(Debug)]
enum Crossing {
    /// One 20 ms frame at the receiving leg's rate.
    Audio(Vec<i16>),
    /// A key the far side pressed.
    Dtmf(char),
}

/// One leg's end of a bridge.
pub struct BridgeApp {
    to_peer: SyncSender<Crossing>,
    from_peer: Receiver<Crossing>,
    /// Converts this leg's caller frames to the peer's rate (`None`: same rate).
    resampler: Option<Resampler>,
    /// Frames dropped because the peer's side lagged or the channel was full.
    dropped: u64,
}

impl std::fmt::Debug for BridgeApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeApp")
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// The two ends of a bridge between a leg at `rate_a` and one at `rate_b` (Hz, each one of
/// the resampler's rates); `None` if a rate is unsupported.
pub fn bridge_pair(rate_a: u32, rate_b: u32) -> Option<(BridgeApp, BridgeApp)> {
    let (a_tx, b_rx) = sync_channel(CHANNEL_FRAMES);
    let (b_tx, a_rx) = sync_channel(CHANNEL_FRAMES);
    let resampler = |from: u32, to: u32| -> Option<Option<Resampler>> {
        if from == to {
            Some(None)
        } else {
            Resampler::new(from, to).ok().map(Some)
        }
    };
    let a = BridgeApp {
        to_peer: a_tx,
        from_peer: a_rx,
        resampler: resampler(rate_a, rate_b)?,
        dropped: 0,
    };
    let b = BridgeApp {
        to_peer: b_tx,
        from_peer: b_rx,
        resampler: resampler(rate_b, rate_a)?,
        dropped: 0,
    };
    Some((a, b))
}

impl BridgeApp {
    fn send(&mut self, c: Crossing) {
        if self.to_peer.try_send(c).is_err() {
            self.dropped += 1;
        }
    }
}

impl MediaApp for BridgeApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        if let Some(frame) = io.caller {
            let out = match self.resampler.as_mut() {
                None => Some(frame.to_vec()),
                Some(r) if frame.len() == r.input_frame() => {
                    let mut out = Vec::with_capacity(r.output_frame());
                    r.process(frame, &mut out).ok().map(|()| out)
                }
                Some(_) => None,
            };
            if let Some(out) = out {
                self.send(Crossing::Audio(out));
            }
        }
        let frame = io.rate as usize / 50;
        loop {
            match self.from_peer.try_recv() {
                Ok(Crossing::Audio(samples)) => {
                    if io.queued_samples() >= MAX_LAG_FRAMES * frame
                        || io.play(&samples, None).is_err()
                    {
                        self.dropped += 1;
                    }
                }
                Ok(Crossing::Dtmf(d)) => io.send_dtmf(&d.to_string()),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    io.finish("the bridged leg is gone");
                    break;
                }
            }
        }
    }

    fn on_event(&mut self, event: &LegEvent, _io: &mut AppIo<'_>) {
        if let LegEvent::Dtmf { digit, .. } = event {
            self.send(Crossing::Dtmf(*digit));
        }
    }
}

/// North American ringback: 440 + 480 Hz, 2 s on, 4 s off (ITU-T E.180 lists it).
const RING_ON_MS: u64 = 2_000;
const RING_PERIOD_MS: u64 = 6_000;
/// Each tone's peak, about −19 dBFS.
const RING_AMPLITUDE: f64 = 3_600.0;

/// Plays a ringback tone while the bridged leg rings; what the caller says is ignored.
#[derive(Debug, Default)]
pub struct RingbackApp {
    /// Samples generated so far (the tone's phase and cadence).
    position: u64,
}

impl RingbackApp {
    /// The next 20 ms at `rate`: tone or silence by the cadence.
    fn next_frame(&mut self, rate: u32) -> Vec<i16> {
        let n = rate as usize / 50;
        let rate = u64::from(rate.max(1));
        let frame = (0..n as u64)
            .map(|i| {
                let at = self.position + i;
                if (at * 1000 / rate) % RING_PERIOD_MS >= RING_ON_MS {
                    return 0;
                }
                let t = at as f64 / rate as f64;
                let v = (std::f64::consts::TAU * 440.0 * t).sin()
                    + (std::f64::consts::TAU * 480.0 * t).sin();
                (v * RING_AMPLITUDE) as i16
            })
            .collect();
        self.position += n as u64;
        frame
    }
}

impl MediaApp for RingbackApp {
    fn on_tick(&mut self, io: &mut AppIo<'_>) {
        if io.queued_samples() == 0 {
            let frame = self.next_frame(io.rate);
            let _ = io.play(&frame, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leg::harness::AppHarness;

    fn tone(n: usize, v: i16) -> Vec<i16> {
        vec![v; n]
    }

    #[test]
    fn each_side_hears_the_other_and_their_keys() {
        let (mut a, mut b) = bridge_pair(8000, 8000).unwrap();
        let mut ha = AppHarness::new(8000);
        let mut hb = AppHarness::new(8000);
        let frame_a = tone(160, 1000);
        let frame_b = tone(160, -2000);
        ha.tick(Some(&frame_a), &mut a);
        hb.tick(Some(&frame_b), &mut b);
        // B ticked after A: it plays A's frame at once; A plays B's on its next tick.
        assert_eq!(hb.sent.as_deref(), Some(frame_a.as_slice()));
        ha.tick(None, &mut a);
        assert_eq!(ha.sent.as_deref(), Some(frame_b.as_slice()));
        ha.event(
            &LegEvent::Dtmf {
                digit: '5',
                source: crate::leg::DtmfSource::Rfc4733,
                duration_ms: 100,
            },
            &mut a,
        );
        hb.tick(None, &mut b);
        assert_eq!(hb.dtmf_out.iter().collect::<String>(), "5");
    }

    #[test]
    fn different_rates_are_resampled_to_the_receiving_leg() {
        let (mut a, mut b) = bridge_pair(8000, 48000).unwrap();
        let mut ha = AppHarness::new(8000);
        let mut hb = AppHarness::new(48000);
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            ha.tick(Some(&tone(160, 500)), &mut a);
            hb.tick(Some(&tone(960, 500)), &mut b);
            at_a = ha.sent.clone().unwrap_or_default();
            at_b = hb.sent.clone().unwrap_or_default();
        }
        assert_eq!((at_b.len(), at_a.len()), (960, 160));
        assert!(at_b.iter().any(|&s| s != 0) && at_a.iter().any(|&s| s != 0));
    }

    #[test]
    fn a_lagging_side_drops_frames_instead_of_adding_delay() {
        let (mut a, mut b) = bridge_pair(8000, 8000).unwrap();
        let (mut ha, mut hb) = (AppHarness::new(8000), AppHarness::new(8000));
        // Ten frames from A arrive while B's clock has not ticked.
        for i in 0..10 {
            ha.tick(Some(&tone(160, i)), &mut a);
        }
        hb.tick(None, &mut b);
        assert!(hb.queued() <= MAX_LAG_FRAMES * 160, "{}", hb.queued());
        assert!(b.dropped >= 10 - MAX_LAG_FRAMES as u64 - 1, "{b:?}");
    }

    #[test]
    fn a_side_whose_peer_is_gone_finishes() {
        let (mut a, b) = bridge_pair(8000, 8000).unwrap();
        drop(b);
        let mut ha = AppHarness::new(8000);
        let why = ha.tick(None, &mut a);
        assert_eq!(why.as_deref(), Some("the bridged leg is gone"));
    }

    #[test]
    fn ringback_rings_two_seconds_in_six() {
        let mut r = RingbackApp::default();
        let frames: Vec<Vec<i16>> = (0..600).map(|_| r.next_frame(8000)).collect();
        let loud = |f: &Vec<i16>| f.iter().any(|&s| s.unsigned_abs() > 1000);
        let on: Vec<bool> = frames.iter().map(loud).collect();
        assert!(on[..100].iter().all(|&x| x), "the first 2 s ring");
        assert!(on[100..300].iter().all(|&x| !x), "then 4 s of silence");
        assert!(on[300..400].iter().all(|&x| x), "then it rings again");
        let peak = frames.iter().flatten().map(|s| s.unsigned_abs()).max();
        assert!(peak <= Some(2 * RING_AMPLITUDE as u16 + 1));
    }
}
