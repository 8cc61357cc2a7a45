//! Fuzzes the WebSocket media-stream dialects: arbitrary frames (text or binary, split on
//! 0xFF bytes) go to every dialect's decoder, and to the Twilio carrier-side decoder, after an
//! optional canned start so the media paths are reached. Decoders must never panic; what the
//! carrier side accepts from a bot must survive a round trip through our own encoder.

#![no_main]

use leadscaller::leg::stream::twilio::{TwilioCarrierCodec, TwilioCodec};
use leadscaller::leg::stream::{
    Dialect, DialectKind, Encoding, Event, FrameRef, MediaFormat, StreamStart,
};
use libfuzzer_sys::fuzz_target;

const STARTS: [&str; 4] = [
    r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#,
    r#"{"event":"start","sequence_number":"1","start":{"call_control_id":"v3:x","media_format":{"encoding":"L16","sample_rate":16000,"channels":1}},"stream_id":"S1"}"#,
    r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}"#,
    r#"{"event":"start","sequenceNumber":1,"start":{"callId":"c","streamId":"s","accountId":"a","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-l16","sampleRate":16000}}}"#,
];

fn start() -> StreamStart {
    StreamStart {
        stream_id: "MZ1".into(),
        call_id: "CA1".into(),
        account_id: Some("AC1".into()),
        tracks: vec![],
        custom_parameters: Default::default(),
        media_format: MediaFormat {
            encoding: Encoding::Pcmu,
            sample_rate: 8000,
            channels: 1,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let frames: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
    for (i, kind) in DialectKind::ALL.into_iter().enumerate() {
        let mut codec = kind.codec();
        if mode & 1 != 0 {
            codec
                .decode(FrameRef::Text(STARTS[i]))
                .expect("canned start");
        }
        for (n, bytes) in frames.iter().enumerate() {
            let frame = if mode >> 1 >> (n % 7) & 1 == 0 {
                FrameRef::Binary(bytes)
            } else {
                match std::str::from_utf8(bytes) {
                    Ok(text) => FrameRef::Text(text),
                    Err(_) => FrameRef::Binary(bytes),
                }
            };
            if let Ok(events) = codec.decode(frame) {
                for event in events {
                    if let Event::Media(m) = event {
                        assert!(!m.payload.is_empty(), "{kind:?} accepted empty media");
                    }
                }
            }
        }
    }
    let mut carrier = TwilioCarrierCodec::new();
    carrier.encode(&Event::Start(start())).expect("start");
    let mut server = TwilioCodec::new();
    server
        .decode(FrameRef::Text(STARTS[0]))
        .expect("canned start");
    for bytes in &frames {
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        if let Ok(command) = carrier.decode(FrameRef::Text(text)) {
            let frame = server.encode(&command).expect("encode");
            assert_eq!(carrier.decode(frame.as_ref()), Ok(command));
        }
    }
});
