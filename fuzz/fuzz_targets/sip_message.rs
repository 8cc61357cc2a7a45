//! Fuzzes the SIP wire parser: datagram parsing, re-serialization, validation, and stream
//! framing of the same bytes cut in two chunks. Network input must never panic.

#![no_main]

use leadscaller::sip::message::{Headers, Message};
use leadscaller::sip::parse::{ParseLimits, StreamEvent, StreamFramer, parse_datagram};
use leadscaller::sip::validate::{validate_request, validate_response};
use libfuzzer_sys::fuzz_target;

/// Headers without Content-Length, which serialization rewrites from the body.
fn without_content_length(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .filter(|x| !x.name.is("Content-Length"))
        .map(|x| (x.name.as_str().to_string(), x.value.clone()))
        .collect()
}

/// Validates a parsed message, then checks that it serializes to bytes that parse back to
/// the same message (Content-Length aside).
fn check_message(msg: &Message, limits: &ParseLimits) {
    match msg {
        Message::Request(r) => {
            let _ = validate_request(r);
        }
        Message::Response(r) => {
            let _ = validate_response(r);
        }
    }
    let bytes = msg.to_bytes();
    let again = match parse_datagram(&bytes, limits) {
        Ok(m) => m,
        // Serialization adds a Content-Length line, which may push a message that was just
        // under the size limit over it.
        Err(f) if matches!(f.error, leadscaller::sip::parse::ParseError::TooLarge(_)) => return,
        Err(f) => panic!(
            "re-serialized message does not parse: {}\n{:?}",
            f.error,
            String::from_utf8_lossy(&bytes)
        ),
    };
    let same = match (msg, &again) {
        (Message::Request(a), Message::Request(b)) => {
            a.method == b.method && a.uri == b.uri && a.body == b.body
        }
        (Message::Response(a), Message::Response(b)) => {
            a.status == b.status && a.reason == b.reason && a.body == b.body
        }
        _ => false,
    };
    assert!(
        same && without_content_length(msg.headers()) == without_content_length(again.headers()),
        "round trip changed the message:\n{msg:?}\n{again:?}"
    );
}

fn drain(framer: &mut StreamFramer, budget: usize, limits: &ParseLimits) {
    // Every event consumes input or ends the stream, so more events than bytes is a hang.
    for _ in 0..=budget {
        match framer.next_event() {
            None => return,
            Some(StreamEvent::Message(m)) => check_message(&m, limits),
            Some(_) => {}
        }
    }
    panic!("StreamFramer keeps producing events without consuming input");
}

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits::default();
    if let Ok(msg) = parse_datagram(data, &limits) {
        check_message(&msg, &limits);
    }
    // The first byte picks where the stream is cut, so chunk boundaries get explored too.
    let split = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut framer = StreamFramer::new(limits);
    framer.push(&data[..split]);
    drain(&mut framer, data.len() + 1, &limits);
    framer.push(&data[split..]);
    drain(&mut framer, data.len() + 1, &limits);
});
