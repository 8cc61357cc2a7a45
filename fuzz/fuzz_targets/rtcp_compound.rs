//! Fuzzes RTCP: `parse_compound` on arbitrary bytes, rebuilding whatever parses with
//! `build_compound` (which may refuse with an error, never panic) and re-parsing the rebuilt
//! datagram, which must give the same packets. The same bytes also drive a
//! `ReceptionStats` through `update`/`report_block`. Network input must never panic.

#![no_main]

use leadscaller::rtp::rtcp::{
    ReceiverReport, ReceptionStats, RtcpPacket, build_compound, parse_compound,
};
use libfuzzer_sys::fuzz_target;

fn compound_checks(data: &[u8]) {
    let Ok(packets) = parse_compound(data) else {
        return;
    };
    assert!(
        !packets.is_empty(),
        "parse_compound accepted a datagram with no packets"
    );
    // Rebuilding may legitimately fail (e.g. a lossily decoded BYE reason grown past 255
    // bytes, an opaque payload that padding removal left unaligned), but must not panic.
    let Ok(bytes) = build_compound(&packets) else {
        return;
    };
    assert!(
        bytes.len().is_multiple_of(4),
        "built datagram not 32-bit aligned"
    );
    match parse_compound(&bytes) {
        Ok(again) => assert_eq!(again, packets, "rebuild changed the packets: {bytes:02x?}"),
        Err(e) => panic!("rebuilt datagram does not parse: {e}\n{packets:?}\n{bytes:02x?}"),
    }
}

/// Each 10-byte record is (seq u16, rtp_ts u32, arrival u32); a record whose first byte has
/// the low three bits set also takes a report block. Checks that the cumulative loss stays in
/// its 24-bit range and that every report block survives an RR build/parse round trip.
fn stats_checks(data: &[u8]) {
    let mut s = ReceptionStats::new();
    assert_eq!((s.expected(), s.received(), s.lost()), (0, 0, 0));
    for r in data.chunks_exact(10) {
        let seq = u16::from_be_bytes([r[0], r[1]]);
        let ts = u32::from_be_bytes([r[2], r[3], r[4], r[5]]);
        let arrival = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
        let _ = s.update(seq, ts, arrival);
        let lost = s.lost();
        assert!(
            (-0x80_0000..=0x7f_ffff).contains(&lost),
            "lost {lost} out of 24-bit range"
        );
        let _ = (s.expected(), s.extended_highest_seq(), s.jitter());
        if r[0] & 7 == 7 {
            let rb = s.report_block(ts, arrival, u32::from(seq));
            let rr = RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: arrival,
                reports: vec![rb],
            });
            let bytes = build_compound(std::slice::from_ref(&rr)).expect("RR with one block");
            assert_eq!(
                parse_compound(&bytes),
                Ok(vec![rr]),
                "report block round trip"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    compound_checks(data);
    stats_checks(data);
});
