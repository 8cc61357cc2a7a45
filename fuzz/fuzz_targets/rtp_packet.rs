//! Fuzzes the RTP side of the media path: `RtpHeader::parse` and `set_ssrc` on the raw
//! bytes, then the same bytes decoded as a push/pop schedule for the adaptive
//! `JitterBuffer` driven by a synthetic clock. Network input must never panic.

#![no_main]

use std::time::{Duration, Instant};

use leadscaller::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use leadscaller::rtp::packet::{RtpHeader, set_ssrc};
use libfuzzer_sys::fuzz_target;

/// Independent re-derivation of RFC 3550 §5.1 for a packet `parse` accepted.
fn check_header(data: &[u8], h: &RtpHeader) {
    assert!(
        data.len() >= 12 && data[0] >> 6 == 2,
        "accepted a non-v2 / short packet"
    );
    let cc = usize::from(data[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if data[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([data[off + 2], data[off + 3]]);
        off += 4 + 4 * usize::from(words);
    }
    let end = if data[0] & 0x20 != 0 {
        data.len() - usize::from(data[data.len() - 1])
    } else {
        data.len()
    };
    assert_eq!(h.payload_offset, off, "payload offset");
    assert!(
        h.payload_offset <= end && end <= data.len(),
        "payload range"
    );
    assert_eq!(h.marker, data[1] & 0x80 != 0);
    assert_eq!(h.payload_type, data[1] & 0x7f);
    assert_eq!(h.sequence, u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(
        h.timestamp,
        u32::from_be_bytes([data[4], data[5], data[6], data[7]])
    );
    assert_eq!(
        h.ssrc,
        u32::from_be_bytes([data[8], data[9], data[10], data[11]])
    );
}

fn header_checks(data: &[u8]) {
    let parsed = RtpHeader::parse(data);
    // set_ssrc must only ever touch bytes 8..12 (and nothing on short input).
    let new_ssrc = parsed.map_or(0x5eed_5eed, |h| !h.ssrc);
    let mut copy = data.to_vec();
    set_ssrc(&mut copy, new_ssrc);
    if data.len() >= 12 {
        assert_eq!(copy[..8], data[..8]);
        assert_eq!(copy[8..12], new_ssrc.to_be_bytes());
        assert_eq!(copy[12..], data[12..]);
    } else {
        assert_eq!(copy, data);
    }
    if let Some(h) = parsed {
        check_header(data, &h);
    }
    // In a 12-byte packet with the P bit the padding count is the last SSRC byte, so
    // re-stamping legitimately changes validity there.
    if data.len() == 12 && data[0] & 0x20 != 0 {
        return;
    }
    if let Some(h) = parsed {
        let again = RtpHeader::parse(&copy).expect("re-stamped packet no longer parses");
        assert_eq!(
            again,
            RtpHeader {
                ssrc: new_ssrc,
                ..h
            }
        );
    } else {
        // The SSRC bytes play no part in validity.
        assert!(
            RtpHeader::parse(&copy).is_none(),
            "re-stamping made a packet valid"
        );
    }
}

/// Reads the schedule: 4 config bytes, then records. Each record starts with `op` and `adv`:
/// the clock moves by `adv` ms scaled by `op >> 4 & 3` (x1, x10, x100, or backwards x1).
/// `op & 1 == 0` is a pop; otherwise a push with the marker bit `op & 4`, and either
/// 6 absolute bytes (seq, timestamp) when `op & 2`, or 2 bytes of deltas from the last pushed
/// packet (sequence delta, timestamp jitter around `delta * frame_samples`).
fn jitter_checks(data: &[u8]) {
    let Some((cfg_bytes, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [b0, b1, b2, b3] = *cfg_bytes;
    let cfg = JitterConfig {
        clock_rate: [8000, 16000, 48000, 90000][usize::from(b0 & 3)],
        frame_samples: [160, 320, 960, 80, 240, 1, 20, 4000][usize::from(b0 >> 2 & 7)],
        min_delay_ms: u32::from(b1),
        max_delay_ms: u32::from(b2) * 4,
        max_packets: usize::from(b3 % 80),
    };
    let mut jb = JitterBuffer::new(cfg);
    let fs = jb.config().frame_samples;
    let base = Instant::now();
    let mut t_ms: u64 = 0;
    let (mut last_seq, mut last_ts) = (0u16, 0u32);
    // Last playout seq, and whether a push happened since (a push may restart the stream).
    let mut last_out: Option<u16> = None;
    let mut pushed_since = false;

    while let Some((&[op, adv], tail)) = rest.split_first_chunk::<2>() {
        rest = tail;
        let adv = u64::from(adv);
        match op >> 4 & 3 {
            0 => t_ms += adv,
            1 => t_ms += adv * 10,
            2 => t_ms += adv * 100,
            _ => t_ms = t_ms.saturating_sub(adv),
        }
        let now = base + Duration::from_millis(t_ms);
        if op & 1 == 0 {
            let Some(p) = jb.pop(now) else { continue };
            let seq = match &p {
                Playout::Frame { seq, .. } | Playout::Lost { seq, .. } => *seq,
            };
            if let (Some(prev), false) = (last_out, pushed_since) {
                // Without a push in between the stream cannot restart: the playout point only
                // moves forward, by one (or two when a frame is dropped to shrink the delay).
                let step = seq.wrapping_sub(prev);
                assert!(
                    step == 1 || step == 2,
                    "playout went from seq {prev} to {seq} with no push in between: {p:?}"
                );
            }
            last_out = Some(seq);
            pushed_since = false;
            continue;
        }
        let (seq, ts) = if op & 2 != 0 {
            let Some((&[s0, s1, t0, t1, t2, t3], tail)) = rest.split_first_chunk::<6>() else {
                return;
            };
            rest = tail;
            (
                u16::from_be_bytes([s0, s1]),
                u32::from_be_bytes([t0, t1, t2, t3]),
            )
        } else {
            let Some((&[d, j], tail)) = rest.split_first_chunk::<2>() else {
                return;
            };
            rest = tail;
            let d = i32::from(d as i8);
            let ts = last_ts
                .wrapping_add_signed(d.wrapping_mul(fs as i32))
                .wrapping_add_signed(i32::from(j as i8));
            (last_seq.wrapping_add_signed(d as i16), ts)
        };
        last_seq = seq;
        last_ts = ts;
        let payload = [seq as u8, (seq >> 8) as u8, op];
        let len = usize::from(op >> 6);
        let _ = jb.push(now, seq, ts, op & 4 != 0, &payload[..len]);
        pushed_since = true;
        let _ = jb.stats();
        let _ = jb.depth_ms();
    }
}

fuzz_target!(|data: &[u8]| {
    header_checks(data);
    jitter_checks(data);
});
