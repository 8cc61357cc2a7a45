//! Fuzzes SRTP/SRTCP unprotection: raw network bytes, and packets we protected ourselves then
//! replayed or bit-flipped. Nothing may panic; a packet that unprotects must give back exactly
//! what was protected; a replayed or altered packet must never unprotect.

#![no_main]

use leadscaller::rtp::srtp::{Mki, SrtpKeys, SrtpSession, SrtpSuite};
use libfuzzer_sys::fuzz_target;

/// Splits off a length-prefixed chunk.
fn chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&len, rest) = data.split_first()?;
    let n = usize::from(len).min(rest.len());
    let (c, rest) = rest.split_at(n);
    *data = rest;
    Some(c)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut data)) = data.split_first() else {
        return;
    };
    let suite = SrtpSuite::ALL[usize::from(cfg) % SrtpSuite::ALL.len()];
    let key = SrtpKeys::new(
        suite,
        &vec![0x11; suite.key_len()],
        &vec![0x22; suite.salt_len()],
    )
    .expect("lengths come from the suite");
    let mki =
        (cfg & 0x80 != 0).then(|| Mki::new(u32::from(cfg & 0x0f), 1 + (cfg >> 4 & 3)).unwrap());
    let mut tx = SrtpSession::new(&key, &key).unwrap().with_mki(mki, mki);
    let mut rx = SrtpSession::new(&key, &key).unwrap().with_mki(mki, mki);
    let (mut wire, mut back) = (Vec::new(), Vec::new());
    // The last packet we protected, its plaintext, and whether it was RTCP.
    let mut last: Option<(Vec<u8>, Vec<u8>, bool)> = None;

    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        match op % 6 {
            0 => {
                let Some(c) = chunk(&mut data) else { return };
                let _ = rx.unprotect_rtp(c, &mut back);
            }
            1 => {
                let Some(c) = chunk(&mut data) else { return };
                let _ = rx.unprotect_rtcp(c, &mut back);
            }
            2 | 3 => {
                let Some(c) = chunk(&mut data) else { return };
                let rtcp = op % 6 == 3;
                let mut plain = c.to_vec();
                if let Some(b0) = plain.first_mut() {
                    *b0 = 0x80 | (*b0 & 0x3f);
                }
                let protected = if rtcp {
                    tx.protect_rtcp(&plain, &mut wire)
                } else {
                    tx.protect_rtp(&plain, &mut wire)
                };
                if protected.is_err() {
                    continue;
                }
                let opened = if rtcp {
                    rx.unprotect_rtcp(&wire, &mut back)
                } else {
                    rx.unprotect_rtp(&wire, &mut back)
                };
                if opened.is_ok() {
                    assert_eq!(back, plain, "{suite} unprotect gave other bytes");
                }
                last = Some((wire.clone(), plain, rtcp));
            }
            4 => {
                let Some((&[pos, mask], rest)) = data.split_first_chunk::<2>() else {
                    return;
                };
                data = rest;
                let Some((packet, _, rtcp)) = &last else {
                    continue;
                };
                if mask == 0 {
                    continue;
                }
                let mut bad = packet.clone();
                let i = usize::from(pos) % bad.len();
                bad[i] ^= mask;
                let opened = if *rtcp {
                    rx.unprotect_rtcp(&bad, &mut back)
                } else {
                    rx.unprotect_rtp(&bad, &mut back)
                };
                assert!(opened.is_err(), "{suite}: flipped byte {i} was accepted");
            }
            _ => {
                let Some((packet, _, rtcp)) = &last else {
                    continue;
                };
                let opened = if *rtcp {
                    rx.unprotect_rtcp(packet, &mut back)
                } else {
                    rx.unprotect_rtp(packet, &mut back)
                };
                assert!(opened.is_err(), "{suite}: replay was accepted");
            }
        }
    }
});
