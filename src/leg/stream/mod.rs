//! WebSocket media-stream dialects, sans-IO: a codec per provider turns the frames a carrier
//! (or a customer's bot) sends into [`Event`]s and our [`Command`]s into frames. Nothing here
//! touches a socket or a clock; the WebSocket server/client drivers come on top.
//!
//! [`twilio`] is the reference protocol (and [`twilio::TwilioCarrierCodec`] speaks it from the
//! carrier's side, for forking a call to a customer's bot); [`telnyx`], [`vonage`] and
//! [`plivo`] are the other carriers' dialects. See `docs/streams.md` for the message tables.

pub mod drops;
pub mod error;
pub mod keepalive;
pub mod plivo;
pub mod reorder;
pub mod telnyx;
pub mod twilio;
pub mod vonage;
mod wire;

pub use error::StreamError;

use std::collections::BTreeMap;

/// One WebSocket data message to send, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (JSON in every dialect here).
    Text(String),
    /// A binary message (raw audio in Vonage's dialect).
    Binary(Vec<u8>),
}

impl Frame {
    /// Borrows the frame for a decoder.
    pub fn as_ref(&self) -> FrameRef<'_> {
        match self {
            Frame::Text(t) => FrameRef::Text(t),
            Frame::Binary(b) => FrameRef::Binary(b),
        }
    }
}

/// One received WebSocket data message, borrowed from the driver's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRef<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// Which side of the call a media chunk or digit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Audio coming into the carrier from the caller.
    Inbound,
    /// Audio the carrier sends to the caller.
    Outbound,
}

/// How the audio in a payload is coded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// G.711 µ-law, one byte a sample.
    Pcmu,
    /// G.711 A-law, one byte a sample.
    Pcma,
    /// 16-bit linear PCM (byte order is the dialect's: see `docs/streams.md`).
    L16,
    /// Anything else, named as the dialect named it.
    Other(String),
}

/// The audio format a stream announced at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    pub encoding: Encoding,
    pub sample_rate: u32,
    pub channels: u8,
}

/// The metadata of a stream, from its `start` (or Vonage's `websocket:connected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// The stream's id (Twilio `streamSid`, Telnyx `stream_id`, Plivo `streamId`; empty for Vonage).
    pub stream_id: String,
    /// The call's id (Twilio `callSid`, Telnyx `call_control_id`, Plivo `callId`; empty for Vonage).
    pub call_id: String,
    /// The account that owns the call, when the dialect says.
    pub account_id: Option<String>,
    /// The tracks that will be streamed (empty when the dialect does not list them).
    pub tracks: Vec<Track>,
    /// Key/value pairs set by whoever started the stream (where an auth token travels).
    pub custom_parameters: BTreeMap<String, String>,
    pub media_format: MediaFormat,
}

/// One chunk of audio received on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChunk {
    pub track: Track,
    /// The chunk's number on its track (1 for the first).
    pub chunk: u64,
    /// Milliseconds since the stream started (Plivo: the sender's wall clock in Unix ms).
    pub timestamp_ms: u64,
    /// The message's sequence number in the whole stream.
    pub sequence: u64,
    /// The raw audio, base64 already decoded.
    pub payload: Vec<u8>,
}

/// Something a carrier told us on a stream (or, for the fork client, what we tell a bot).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The socket is up and speaking the dialect.
    Connected {
        protocol: Option<String>,
        version: Option<String>,
    },
    /// The stream's metadata; media may follow.
    Start(StreamStart),
    /// A chunk of audio.
    Media(MediaChunk),
    /// A key press.
    Dtmf {
        digit: char,
        track: Option<Track>,
        duration_ms: Option<u32>,
    },
    /// Audio we sent before the mark `name` has been played (Plivo `playedStream`, Vonage
    /// `websocket:notify`), or dropped by a clear.
    Mark { name: String },
    /// The carrier confirmed a clear (Plivo `clearedAudio`, Vonage `websocket:cleared`).
    Cleared,
    /// The carrier reported an error on the stream (Telnyx `error`).
    Error {
        code: Option<i64>,
        title: Option<String>,
        detail: Option<String>,
    },
    /// The stream ended.
    Stop,
}

/// Something we ask the far end to do with the audio it plays to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Queue this audio, in the stream's format.
    Media { payload: Vec<u8> },
    /// Tell us with a mark `name` once everything queued before it has been played.
    Mark { name: String },
    /// Drop everything queued.
    Clear,
}

/// A sans-IO codec for one stream in one dialect, as seen by our server.
pub trait Dialect {
    /// Turns one received frame into the events it carries (none while a frame waits to be
    /// put in order); on error the frame is dropped and the codec's state is unchanged.
    fn decode(&mut self, frame: FrameRef<'_>) -> Result<Vec<Event>, StreamError>;
    /// Turns one command into the frame to send.
    fn encode(&mut self, command: &Command) -> Result<Frame, StreamError>;
}

/// Read buffer of every WebSocket we run (media streams as server and fork client, the
/// Deepgram and ElevenLabs adapters). tungstenite
/// zero-fills its whole read buffer before every read (128 KiB by default): at 50 messages a
/// second per stream that memset was the biggest single cost of an echo stream. Stream
/// messages are under 2 KiB; a larger frame still gets the room it needs (the codec reserves
/// its length).
pub const WS_READ_BUFFER: usize = 4 * 1024;

/// The tungstenite settings of every WebSocket we open as a client (fork, Deepgram,
/// ElevenLabs): the small read buffer above, the rest as tungstenite's defaults.
pub fn ws_client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
}

/// The dialects a stream endpoint can speak, chosen by the path it was reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialectKind {
    Twilio,
    Telnyx,
    Vonage,
    Plivo,
}

impl DialectKind {
    /// Every dialect, for tests and fuzzing.
    pub const ALL: [DialectKind; 4] = [
        DialectKind::Twilio,
        DialectKind::Telnyx,
        DialectKind::Vonage,
        DialectKind::Plivo,
    ];

    /// The dialect's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DialectKind::Twilio => "twilio",
            DialectKind::Telnyx => "telnyx",
            DialectKind::Vonage => "vonage",
            DialectKind::Plivo => "plivo",
        }
    }

    /// A fresh codec for one stream in this dialect, with default settings.
    pub fn codec(self) -> Box<dyn Dialect + Send> {
        match self {
            DialectKind::Twilio => Box::new(twilio::TwilioCodec::new()),
            DialectKind::Telnyx => Box::new(telnyx::TelnyxCodec::new()),
            DialectKind::Vonage => Box::new(vonage::VonageCodec::new()),
            DialectKind::Plivo => Box::new(plivo::PlivoCodec::new()),
        }
    }
}

impl MediaFormat {
    /// Checks that a payload holds whole samples of this format (and is not empty).
    pub fn check_payload(&self, len: usize) -> Result<(), StreamError> {
        let sample = match self.encoding {
            Encoding::L16 => 2 * usize::from(self.channels.max(1)),
            Encoding::Pcmu | Encoding::Pcma => usize::from(self.channels.max(1)),
            Encoding::Other(_) => 1,
        };
        if len == 0 || !len.is_multiple_of(sample) {
            return Err(StreamError::PayloadSize {
                len,
                expected: sample,
                exact: false,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod read_buffer_tests {
    use super::WS_READ_BUFFER;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    /// The small read buffer still takes a message many times its size (a bot sending a
    /// second of audio in one `media`), whole.
    #[tokio::test]
    async fn a_message_larger_than_the_read_buffer_arrives_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let config = WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER);
            let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config))
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    got.push(t.len());
                }
                if got.len() == 2 {
                    break;
                }
            }
            got
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap();
        let big = "x".repeat(40 * WS_READ_BUFFER + 7);
        ws.send(Message::Text(big.clone().into())).await.unwrap();
        ws.send(Message::Text("small".into())).await.unwrap();
        assert_eq!(server.await.unwrap(), vec![big.len(), 5]);
    }
}
