//! RFC 4733 telephone-events (DTMF over RTP).
//!
//! Sans-IO: the receiver is fed parsed packets plus their RTP timestamp and marker bit, and
//! time (for closing events whose end packets were lost) is passed in as an RTP timestamp.

use thiserror::Error;

/// Digits for events 0–15, indexed by event code (RFC 4733 §3.2).
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// Errors from parsing or generating telephone-events.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload too short: {0} bytes (need 4)")]
    TooShort(usize),
    #[error("not a DTMF digit: {0:?}")]
    InvalidDigit(char),
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
}

/// Map a DTMF digit (`0-9 * # A-D`, case-insensitive) to its RFC 4733 event code.
pub fn event_code(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&c| c == d).map(|i| i as u8)
}

/// One RFC 4733 telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0–15 are DTMF digits.
    pub event: u8,
    /// E bit: this packet marks the end of the event.
    pub end: bool,
    /// Volume in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse a payload. Only the first 4 bytes are read; shorter input is rejected.
    /// The reserved bit is ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        if payload.len() < 4 {
            return Err(DtmfError::TooShort(payload.len()));
        }
        Ok(Self {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// Serialize to the 4-byte wire form (reserved bit zero, volume masked to 6 bits).
    pub fn write(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3f);
        [self.event, flags, d[0], d[1]]
    }

    /// The DTMF digit for events 0–15, `None` for other events.
    pub fn digit(&self) -> Option<char> {
        DIGITS.get(self.event as usize).copied()
    }
}

/// A completed key press reported by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
    /// Duration in milliseconds (from the event's duration field and the clock rate).
    pub duration_ms: u32,
    /// RTP timestamp of the event (the start of the press).
    pub timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    timestamp: u32,
    event: u8,
    duration: u16,
    end_seen: bool,
    emitted: bool,
}

/// Turns a stream of telephone-event packets into key presses, each reported exactly once.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.2): packets carrying the same
/// timestamp are continuations, retransmitted starts or redundant ends of one press; a new
/// timestamp is a new press (even with the same digit). A press is reported on its first end
/// packet, or — if the end packets were lost — when a newer event starts or
/// [`on_timeout`](Self::on_timeout) sees no end within the timeout. Packets older than the
/// current event are ignored. Non-DTMF events (codes above 15) are ignored.
///
/// Each call returns at most one digit. In the rare case where one packet both closes an
/// unfinished press and is itself the end of a new one, the new press is reported by the next
/// call to [`push`](Self::push) or [`on_timeout`](Self::on_timeout).
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    clock_rate: u32,
    timeout_units: u32,
    current: Option<Active>,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new(8000)
    }
}

impl DtmfReceiver {
    /// Default time after the last known duration before an unterminated event is closed.
    pub const DEFAULT_TIMEOUT_MS: u32 = 500;

    /// New receiver for the given telephone-event clock rate (usually 8000). A rate of 0 is
    /// treated as 8000.
    pub fn new(clock_rate: u32) -> Self {
        let clock_rate = if clock_rate == 0 { 8000 } else { clock_rate };
        let mut r = Self {
            clock_rate,
            timeout_units: 0,
            current: None,
        };
        r.set_timeout_ms(Self::DEFAULT_TIMEOUT_MS);
        r
    }

    /// Set how long (past the event's last reported duration) to wait for an end packet.
    pub fn set_timeout_ms(&mut self, ms: u32) {
        self.timeout_units = ms_to_units(ms, self.clock_rate);
    }

    /// Feed one telephone-event packet.
    pub fn push(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        event: TelephoneEvent,
    ) -> Option<DtmfDigit> {
        // The marker bit only flags the first packet of an event; identity is the timestamp,
        // which also covers retransmitted starts (same timestamp, marker set again).
        let _ = marker;
        if event.digit().is_none() {
            return self.flush_pending();
        }
        if let Some(cur) = self.current.as_mut()
            && cur.timestamp == rtp_timestamp
        {
            if cur.event != event.event || cur.emitted {
                return None;
            }
            cur.duration = cur.duration.max(event.duration);
            if event.end {
                cur.end_seen = true;
                cur.emitted = true;
                let c = *cur;
                return Some(self.digit_of(c));
            }
            return None;
        }
        if let Some(cur) = self.current
            && (rtp_timestamp.wrapping_sub(cur.timestamp) as i32) < 0
        {
            // Late packet from an older event.
            return self.flush_pending();
        }
        let closed = self.current.filter(|c| !c.emitted);
        let mut new = Active {
            timestamp: rtp_timestamp,
            event: event.event,
            duration: event.duration,
            end_seen: event.end,
            emitted: false,
        };
        let out = match closed {
            Some(prev) => Some(self.digit_of(prev)),
            None if event.end => {
                new.emitted = true;
                Some(self.digit_of(new))
            }
            None => None,
        };
        self.current = Some(new);
        out
    }

    /// Close the current event if no end packet arrived within the timeout. `now_rtp_ts` is
    /// the current time expressed on the telephone-event RTP clock.
    pub fn on_timeout(&mut self, now_rtp_ts: u32) -> Option<DtmfDigit> {
        let cur = self.current?;
        if cur.emitted {
            return None;
        }
        if cur.end_seen {
            return self.flush_pending();
        }
        let elapsed = now_rtp_ts.wrapping_sub(cur.timestamp) as i32;
        if elapsed >= 0 && elapsed as u64 >= u64::from(cur.duration) + u64::from(self.timeout_units)
        {
            if let Some(c) = self.current.as_mut() {
                c.emitted = true;
            }
            return Some(self.digit_of(cur));
        }
        None
    }

    /// Whether a press is in progress and not yet reported.
    pub fn in_progress(&self) -> bool {
        self.current.is_some_and(|c| !c.emitted)
    }

    fn flush_pending(&mut self) -> Option<DtmfDigit> {
        let cur = self.current.as_mut()?;
        if cur.end_seen && !cur.emitted {
            cur.emitted = true;
            let c = *cur;
            return Some(self.digit_of(c));
        }
        None
    }

    fn digit_of(&self, a: Active) -> DtmfDigit {
        DtmfDigit {
            digit: DIGITS[(a.event & 0x0f) as usize],
            duration_ms: (u64::from(a.duration) * 1000 / u64::from(self.clock_rate)) as u32,
            timestamp: a.timestamp,
        }
    }
}

fn ms_to_units(ms: u32, clock_rate: u32) -> u32 {
    (u64::from(ms) * u64::from(clock_rate) / 1000).min(u64::from(u32::MAX)) as u32
}

/// Generates the packet sequence for one key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSender {
    /// Volume in -dBm0 put in every packet (default 10).
    pub volume: u8,
}

impl Default for DtmfSender {
    fn default() -> Self {
        Self { volume: 10 }
    }
}

impl DtmfSender {
    /// Packets for one press: `(marker, duration_field, payload)`, one per `ptime_ms`, all to
    /// be sent with the same RTP timestamp. The first packet has the marker set, durations
    /// increase, and the final (end) packet is repeated 3 times. The total duration is capped
    /// at 65535 RTP units (RFC 4733 long-event segmentation is not done).
    pub fn packets(
        &self,
        digit: char,
        duration_ms: u32,
        clock_rate: u32,
        ptime_ms: u32,
    ) -> Result<Vec<(bool, u16, [u8; 4])>, DtmfError> {
        let event = event_code(digit).ok_or(DtmfError::InvalidDigit(digit))?;
        if clock_rate == 0 {
            return Err(DtmfError::InvalidParameter("clock rate is zero"));
        }
        if ptime_ms == 0 {
            return Err(DtmfError::InvalidParameter("ptime is zero"));
        }
        if duration_ms == 0 {
            return Err(DtmfError::InvalidParameter("duration is zero"));
        }
        let total = ms_to_units(duration_ms, clock_rate).clamp(1, u32::from(u16::MAX)) as u16;
        let step = ms_to_units(ptime_ms, clock_rate).clamp(1, u32::from(u16::MAX)) as u16;
        let mk = |duration: u16, end: bool| {
            TelephoneEvent {
                event,
                end,
                volume: self.volume,
                duration,
            }
            .write()
        };
        let mut out = Vec::new();
        let mut d = step;
        while d < total {
            out.push((out.is_empty(), d, mk(d, false)));
            d = d.saturating_add(step);
        }
        for _ in 0..3 {
            out.push((out.is_empty(), total, mk(total, true)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn parse_write_round_trip() {
        let bytes = [0x05, 0x8a, 0x03, 0x20];
        let e = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(e, ev(5, true, 800));
        assert_eq!(e.write(), bytes);
        let e2 = ev(11, false, 160);
        assert_eq!(TelephoneEvent::parse(&e2.write()).unwrap(), e2);
        // Reserved bit is ignored on parse and cleared on write.
        let r = TelephoneEvent::parse(&[1, 0x40 | 0x0a, 0, 1]).unwrap();
        assert_eq!(r, ev(1, false, 1));
    }

    #[test]
    fn rejects_short() {
        for n in 0..4 {
            assert_eq!(
                TelephoneEvent::parse(&[0u8; 4][..n]),
                Err(DtmfError::TooShort(n))
            );
        }
    }

    #[test]
    fn every_digit() {
        let all = "0123456789*#ABCD";
        for (i, c) in all.chars().enumerate() {
            let e = ev(i as u8, false, 0);
            assert_eq!(e.digit(), Some(c));
            assert_eq!(event_code(c), Some(i as u8));
            assert_eq!(TelephoneEvent::parse(&e.write()).unwrap().digit(), Some(c));
        }
        assert_eq!(event_code('a'), Some(12));
        assert_eq!(event_code('x'), None);
        assert_eq!(ev(16, false, 0).digit(), None);
        assert_eq!(ev(255, false, 0).digit(), None);
    }

    #[test]
    fn sipp_like_capture_yields_one_digit() {
        // Digit '1', 8 kHz, 20 ms packets, 3 end packets: classic capture.
        let ts = 48_000;
        let mut r = DtmfReceiver::default();
        let mut got = Vec::new();
        let pkts: Vec<(bool, TelephoneEvent)> = vec![
            (true, ev(1, false, 160)),
            (false, ev(1, false, 320)),
            (false, ev(1, false, 480)),
            (false, ev(1, false, 640)),
            (false, ev(1, true, 800)),
            (false, ev(1, true, 800)),
            (false, ev(1, true, 800)),
        ];
        for (m, e) in pkts {
            let bytes = e.write();
            got.extend(r.push(ts, m, TelephoneEvent::parse(&bytes).unwrap()));
        }
        got.extend(r.on_timeout(ts + 100_000));
        assert_eq!(
            got,
            vec![DtmfDigit {
                digit: '1',
                duration_ms: 100,
                timestamp: ts
            }]
        );
        assert!(!r.in_progress());
    }

    #[test]
    fn retransmitted_start_and_duplicates_do_not_double_count() {
        let mut r = DtmfReceiver::default();
        let mut got = Vec::new();
        for (m, e) in [
            (true, ev(9, false, 0)),
            (true, ev(9, false, 0)),
            (true, ev(9, false, 0)),
            (false, ev(9, false, 160)),
            (false, ev(9, false, 160)),
            (false, ev(9, true, 320)),
            (false, ev(9, true, 320)),
            (false, ev(9, true, 320)),
            (false, ev(9, false, 160)), // reordered late continuation
        ] {
            got.extend(r.push(1000, m, e));
        }
        // Late packet from the earlier event after a newer one has started: ignored.
        got.extend(r.push(5000, true, ev(3, false, 160)));
        got.extend(r.push(1000, false, ev(9, true, 320)));
        got.extend(r.push(5000, false, ev(3, true, 320)));
        let digits: String = got.iter().map(|d| d.digit).collect();
        assert_eq!(digits, "93");
        assert_eq!(got[0].duration_ms, 40);
    }

    #[test]
    fn same_digit_twice_yields_two() {
        let mut r = DtmfReceiver::default();
        let mut got = Vec::new();
        for ts in [8000u32, 16000] {
            got.extend(r.push(ts, true, ev(5, false, 160)));
            for _ in 0..3 {
                got.extend(r.push(ts, false, ev(5, true, 400)));
            }
        }
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|d| d.digit == '5' && d.duration_ms == 50));
        assert_eq!(got[0].timestamp, 8000);
        assert_eq!(got[1].timestamp, 16000);
    }

    #[test]
    fn lost_end_closed_by_timeout() {
        let mut r = DtmfReceiver::new(8000);
        r.set_timeout_ms(200);
        assert_eq!(r.push(100, true, ev(7, false, 160)), None);
        assert_eq!(r.push(100, false, ev(7, false, 480)), None);
        assert!(r.in_progress());
        // 480 + 1600 units not yet elapsed.
        assert_eq!(r.on_timeout(100 + 2000), None);
        let d = r.on_timeout(100 + 2080).unwrap();
        assert_eq!(
            d,
            DtmfDigit {
                digit: '7',
                duration_ms: 60,
                timestamp: 100
            }
        );
        assert_eq!(r.on_timeout(100 + 5000), None);
        // Late end packets for the closed event don't re-report it.
        assert_eq!(r.push(100, false, ev(7, true, 800)), None);
    }

    #[test]
    fn lost_end_closed_by_new_event() {
        let mut r = DtmfReceiver::default();
        assert_eq!(r.push(0, true, ev(2, false, 160)), None);
        let d = r.push(8000, true, ev(2, false, 160)).unwrap();
        assert_eq!((d.digit, d.timestamp, d.duration_ms), ('2', 0, 20));
        let d = r.push(8000, false, ev(2, true, 320)).unwrap();
        assert_eq!((d.digit, d.timestamp), ('2', 8000));
    }

    #[test]
    fn only_end_packets_received_and_wraparound() {
        let mut r = DtmfReceiver::default();
        let t0 = u32::MAX - 100;
        assert_eq!(r.push(t0, false, ev(3, false, 160)), None);
        // New event across the timestamp wrap, whose start was lost: closes the old one,
        // and the new one is reported on its next (redundant) end packet.
        let d = r.push(50, false, ev(4, true, 800)).unwrap();
        assert_eq!(d.digit, '3');
        let d = r.push(50, false, ev(4, true, 800)).unwrap();
        assert_eq!((d.digit, d.duration_ms), ('4', 100));
        assert_eq!(r.push(50, false, ev(4, true, 800)), None);
        // Fresh receiver: a lone end packet is reported immediately.
        let mut r = DtmfReceiver::new(16000);
        let d = r.push(9, false, ev(0, true, 1600)).unwrap();
        assert_eq!((d.digit, d.duration_ms), ('0', 100));
    }

    #[test]
    fn pending_end_flushed_by_timeout() {
        let mut r = DtmfReceiver::default();
        r.push(0, true, ev(1, false, 160));
        assert!(r.push(8000, false, ev(6, true, 400)).is_some()); // reports '1'
        let d = r.on_timeout(8001).unwrap();
        assert_eq!(d.digit, '6');
        assert_eq!(r.on_timeout(99_999), None);
    }

    #[test]
    fn non_dtmf_events_ignored() {
        let mut r = DtmfReceiver::default();
        assert_eq!(r.push(0, true, ev(16, true, 160)), None);
        assert_eq!(r.push(0, true, ev(200, true, 160)), None);
        assert!(!r.in_progress());
    }

    #[test]
    fn sender_sequence() {
        let s = DtmfSender::default();
        let p = s.packets('#', 100, 8000, 20).unwrap();
        let durs: Vec<u16> = p.iter().map(|x| x.1).collect();
        assert_eq!(durs, vec![160, 320, 480, 640, 800, 800, 800]);
        assert!(p[0].0);
        assert!(p[1..].iter().all(|x| !x.0));
        for (i, (_, d, bytes)) in p.iter().enumerate() {
            let e = TelephoneEvent::parse(bytes).unwrap();
            assert_eq!(e.digit(), Some('#'));
            assert_eq!(e.duration, *d);
            assert_eq!(e.volume, 10);
            assert_eq!(e.end, i >= 4);
        }
        // Feeding the sender output to the receiver yields exactly the digit.
        let mut r = DtmfReceiver::default();
        let got: Vec<DtmfDigit> = p
            .iter()
            .filter_map(|(m, _, b)| r.push(777, *m, TelephoneEvent::parse(b).unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![DtmfDigit {
                digit: '#',
                duration_ms: 100,
                timestamp: 777
            }]
        );
    }

    #[test]
    fn sender_edge_cases() {
        let s = DtmfSender::default();
        // Shorter than one ptime: three end packets, first with marker.
        let p = s.packets('5', 10, 8000, 20).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0].0 && !p[1].0 && !p[2].0);
        assert!(p.iter().all(|x| x.1 == 80));
        // Very long press is capped at u16::MAX units.
        let p = s.packets('d', 60_000, 8000, 20).unwrap();
        assert_eq!(p.last().unwrap().1, u16::MAX);
        assert!(p.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(
            s.packets('x', 100, 8000, 20),
            Err(DtmfError::InvalidDigit('x'))
        );
        assert!(s.packets('1', 0, 8000, 20).is_err());
        assert!(s.packets('1', 100, 0, 20).is_err());
        assert!(s.packets('1', 100, 8000, 0).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut r = DtmfReceiver::new(0);
        for _ in 0..20_000 {
            let x = next();
            let bytes = x.to_be_bytes();
            let len = (x % 7) as usize;
            if let Ok(e) = TelephoneEvent::parse(&bytes[..len]) {
                let _ = r.push((x >> 40) as u32 % 50_000, x & 1 == 1, e);
            }
            if x.is_multiple_of(13) {
                let _ = r.on_timeout((x >> 8) as u32);
            }
        }
    }
}
