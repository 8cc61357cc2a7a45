//! Fuzzes RFC 4733 telephone-events: `TelephoneEvent::parse` → `write` must reproduce the
//! first 4 bytes with the reserved bit cleared, and a `DtmfReceiver` fed a packet/timeout
//! sequence decoded from the bytes must never panic and only report valid DTMF digits.

#![no_main]

use leadscaller::rtp::dtmf::{DtmfError, DtmfReceiver, TelephoneEvent, event_code};
use libfuzzer_sys::fuzz_target;

const VALID: &str = "0123456789*#ABCD";

fn check_digit(d: leadscaller::rtp::dtmf::DtmfDigit, clock_rate: u32) {
    assert!(VALID.contains(d.digit), "invalid digit {:?}", d.digit);
    assert!(event_code(d.digit).is_some());
    // The duration field is 16 bits, so the press cannot be longer than 65535 units.
    assert!(
        u64::from(d.duration_ms) <= 65_535 * 1000 / u64::from(clock_rate),
        "duration {} ms too long for clock {clock_rate}",
        d.duration_ms
    );
}

fn round_trip(data: &[u8]) {
    match TelephoneEvent::parse(data) {
        Err(e) => {
            assert!(data.len() < 4);
            assert_eq!(e, DtmfError::TooShort(data.len()));
        }
        Ok(ev) => {
            assert!(data.len() >= 4);
            let expect = [data[0], data[1] & !0x40, data[2], data[3]];
            assert_eq!(
                ev.write(),
                expect,
                "write(parse(x)) != x without the reserved bit"
            );
            assert_eq!(TelephoneEvent::parse(&ev.write()), Ok(ev));
            assert_eq!(ev.digit().is_some(), ev.event < 16);
            if let Some(c) = ev.digit() {
                assert_eq!(event_code(c), Some(ev.event));
            }
        }
    }
}

/// Bytes 0–1: clock rate (0 means the default 8000), bytes 2–3: timeout in ms. Then 9-byte
/// records `[kind, ts(4), event(4)]`: `kind & 0x80` is an `on_timeout(ts)` call, otherwise a
/// push with marker `kind & 1`; `kind & 2` reuses the previous timestamp (continuations).
fn receiver(data: &[u8]) {
    let Some((&[c0, c1, t0, t1], mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let clock_rate = u32::from(u16::from_be_bytes([c0, c1]));
    let mut rx = DtmfReceiver::new(clock_rate);
    let clock_rate = if clock_rate == 0 { 8000 } else { clock_rate };
    rx.set_timeout_ms(u32::from(u16::from_be_bytes([t0, t1])));
    let mut last_ts = 0u32;
    while let Some((rec, tail)) = rest.split_first_chunk::<9>() {
        rest = tail;
        let kind = rec[0];
        let ts = if kind & 2 != 0 {
            last_ts
        } else {
            u32::from_be_bytes([rec[1], rec[2], rec[3], rec[4]])
        };
        let out = if kind & 0x80 != 0 {
            rx.on_timeout(ts)
        } else {
            last_ts = ts;
            let ev = TelephoneEvent::parse(&rec[5..]).expect("4 bytes");
            rx.push(ts, kind & 1 != 0, ev)
        };
        if let Some(d) = out {
            check_digit(d, clock_rate);
        }
        let _ = rx.in_progress();
    }
    if let Some(d) = rx.on_timeout(last_ts.wrapping_add(0x4000_0000)) {
        check_digit(d, clock_rate);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    receiver(data);
});
