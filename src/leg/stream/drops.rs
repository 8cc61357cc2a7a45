//! Frames a stream driver dropped, counted by reason, for the stream's end log line and
//! metrics. Sans-IO: the driver calls [`DropCounters::record`] for each refused frame.

use super::error::StreamError;
use std::fmt;

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A text frame that is not JSON.
    InvalidJson,
    /// An `event` the dialect does not have.
    UnknownEvent,
    /// A payload that is not base64.
    BadBase64,
    /// A payload of a size the format does not allow.
    WrongSize,
    /// A binary frame on a JSON dialect.
    BinaryOnJson,
    /// Media (or a command) before `start`.
    MediaBeforeStart,
    /// JSON of the wrong shape, a missing field or a field with an invalid value.
    Malformed,
    /// A good frame our side could not take in time (its queue was full).
    QueueFull,
}

impl DropReason {
    /// The reason a decode error falls under.
    pub fn of(e: &StreamError) -> DropReason {
        match e {
            StreamError::InvalidJson(_) => DropReason::InvalidJson,
            StreamError::UnknownEvent(_) => DropReason::UnknownEvent,
            StreamError::BadBase64 => DropReason::BadBase64,
            StreamError::PayloadSize { .. } => DropReason::WrongSize,
            StreamError::BinaryOnJsonDialect => DropReason::BinaryOnJson,
            StreamError::MediaBeforeStart | StreamError::NotStarted => DropReason::MediaBeforeStart,
            _ => DropReason::Malformed,
        }
    }

    /// The reason's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::InvalidJson => "invalid_json",
            DropReason::UnknownEvent => "unknown_event",
            DropReason::BadBase64 => "bad_base64",
            DropReason::WrongSize => "wrong_size",
            DropReason::BinaryOnJson => "binary_on_json",
            DropReason::MediaBeforeStart => "media_before_start",
            DropReason::Malformed => "malformed",
            DropReason::QueueFull => "queue_full",
        }
    }

    const ALL: [DropReason; 8] = [
        DropReason::InvalidJson,
        DropReason::UnknownEvent,
        DropReason::BadBase64,
        DropReason::WrongSize,
        DropReason::BinaryOnJson,
        DropReason::MediaBeforeStart,
        DropReason::Malformed,
        DropReason::QueueFull,
    ];
}

/// Dropped frames of one stream, per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    /// Counts one frame refused with `e`; returns its reason.
    pub fn record(&mut self, e: &StreamError) -> DropReason {
        let r = DropReason::of(e);
        self.add(r);
        r
    }

    /// Counts one frame dropped for `reason`.
    pub fn add(&mut self, reason: DropReason) {
        let i = DropReason::ALL
            .iter()
            .position(|x| *x == reason)
            .unwrap_or(0);
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// Frames dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|x| *x == reason)
            .map_or(0, |i| self.counts[i])
    }

    /// All dropped frames.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// `invalid_json=1 bad_base64=2` (only the non-zero reasons; `none` when nothing was dropped).
impl fmt::Display for DropCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (r, n) in DropReason::ALL.iter().zip(self.counts) {
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{}={n}", r.name())?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leg::stream::twilio::TwilioCodec;
    use crate::leg::stream::{Dialect, FrameRef};

    #[test]
    fn every_kind_of_bad_frame_is_counted_under_its_reason() {
        let mut codec = TwilioCodec::new();
        let mut drops = DropCounters::default();
        let media = r#"{"event":"media","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAAA"}}"#;
        let frames: [FrameRef<'_>; 4] = [
            FrameRef::Text("not json"),
            FrameRef::Text(r#"{"event":"nope"}"#),
            FrameRef::Binary(&[1, 2, 3]),
            FrameRef::Text(media),
        ];
        for f in frames {
            let e = codec.decode(f).expect_err("every frame is bad here");
            drops.record(&e);
        }
        assert_eq!(drops.get(DropReason::InvalidJson), 1);
        assert_eq!(drops.get(DropReason::UnknownEvent), 1);
        assert_eq!(drops.get(DropReason::BinaryOnJson), 1);
        assert_eq!(drops.get(DropReason::MediaBeforeStart), 1);
        assert_eq!(drops.total(), 4);
        assert_eq!(
            drops.to_string(),
            "invalid_json=1 unknown_event=1 binary_on_json=1 media_before_start=1"
        );
        assert_eq!(DropCounters::default().to_string(), "none");
        drops.record(&StreamError::BadBase64);
        drops.record(&StreamError::PayloadSize {
            len: 3,
            expected: 2,
            exact: false,
        });
        assert_eq!(drops.get(DropReason::BadBase64), 1);
        assert_eq!(drops.get(DropReason::WrongSize), 1);
    }
}
