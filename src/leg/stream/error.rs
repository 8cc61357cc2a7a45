//! Why a stream frame was refused, and the WebSocket close code to use if the caller closes.

/// What was wrong with a frame (or with a command we were asked to encode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The text frame is not JSON at all.
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    /// The JSON does not have the dialect's shape (a field of the wrong type).
    #[error("message has the wrong shape: {0}")]
    Malformed(String),
    /// The `event` is not one this dialect knows (name cut to 64 characters).
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// A required field is missing (dotted path, e.g. `media.payload`).
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    /// A field is present but its value is not allowed (e.g. a sequence number that is not a number).
    #[error("field `{0}` has an invalid value")]
    InvalidField(&'static str),
    /// The audio payload is not valid base64.
    #[error("payload is not valid base64")]
    BadBase64,
    /// The audio payload has a size the format does not allow.
    #[error("payload of {len} bytes: expected {} {expected}", if *exact { "exactly" } else { "a non-zero multiple of" })]
    PayloadSize {
        len: usize,
        expected: usize,
        exact: bool,
    },
    /// A binary frame arrived on a dialect that only speaks JSON text.
    #[error("binary frame on a JSON dialect")]
    BinaryOnJsonDialect,
    /// Media arrived before the stream's start told us its format.
    #[error("media before start")]
    MediaBeforeStart,
    /// We were asked to encode something that needs the stream's start first (our own bug).
    #[error("cannot encode before the stream has started")]
    NotStarted,
}

/// Close code: the peer sent a data type we cannot accept (RFC 6455 §7.4.1).
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code: a text message whose content is not what its type promises (RFC 6455).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: the peer broke the protocol's rules (RFC 6455).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code: we failed on our side (RFC 6455).
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Application close code: unknown event.
pub const CLOSE_UNKNOWN_EVENT: u16 = 4000;
/// Application close code: a message of the wrong shape.
pub const CLOSE_MALFORMED: u16 = 4001;
/// Application close code: a required field is missing.
pub const CLOSE_MISSING_FIELD: u16 = 4002;
/// Application close code: a field has an invalid value.
pub const CLOSE_INVALID_FIELD: u16 = 4003;
/// Application close code: a payload that is not base64.
pub const CLOSE_BAD_BASE64: u16 = 4004;
/// Application close code: a payload of the wrong size.
pub const CLOSE_PAYLOAD_SIZE: u16 = 4005;
/// Application close code: the peer answered no ping (nor sent anything) for two
/// keep-alive intervals.
pub const CLOSE_KEEPALIVE_TIMEOUT: u16 = 4010;

impl StreamError {
    /// The close code to send if the caller decides to close the stream over this error.
    pub fn close_code(&self) -> u16 {
        match self {
            StreamError::InvalidJson(_) => CLOSE_INVALID_PAYLOAD,
            StreamError::BinaryOnJsonDialect => CLOSE_UNSUPPORTED_DATA,
            StreamError::MediaBeforeStart => CLOSE_POLICY_VIOLATION,
            StreamError::NotStarted => CLOSE_INTERNAL_ERROR,
            StreamError::UnknownEvent(_) => CLOSE_UNKNOWN_EVENT,
            StreamError::Malformed(_) => CLOSE_MALFORMED,
            StreamError::MissingField(_) => CLOSE_MISSING_FIELD,
            StreamError::InvalidField(_) => CLOSE_INVALID_FIELD,
            StreamError::BadBase64 => CLOSE_BAD_BASE64,
            StreamError::PayloadSize { .. } => CLOSE_PAYLOAD_SIZE,
        }
    }

    /// Whether the peer is clearly not speaking the protocol (close), rather than sending one
    /// bad message (drop the frame, count it, keep the stream).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StreamError::InvalidJson(_) | StreamError::BinaryOnJsonDialect
        )
    }

    /// An unknown-event error whose name is cut short enough to log.
    pub(crate) fn unknown_event(name: &str) -> Self {
        StreamError::UnknownEvent(name.chars().take(64).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_documented_close_code() {
        let table = [
            (StreamError::InvalidJson("x".into()), 1007, true),
            (StreamError::BinaryOnJsonDialect, 1003, true),
            (StreamError::MediaBeforeStart, 1008, false),
            (StreamError::NotStarted, 1011, false),
            (StreamError::UnknownEvent("x".into()), 4000, false),
            (StreamError::Malformed("x".into()), 4001, false),
            (StreamError::MissingField("media"), 4002, false),
            (StreamError::InvalidField("media.chunk"), 4003, false),
            (StreamError::BadBase64, 4004, false),
            (
                StreamError::PayloadSize {
                    len: 3,
                    expected: 2,
                    exact: false,
                },
                4005,
                false,
            ),
        ];
        for (err, code, fatal) in table {
            assert_eq!(err.close_code(), code, "{err}");
            assert_eq!(err.is_fatal(), fatal, "{err}");
        }
    }

    #[test]
    fn unknown_event_names_are_cut_for_logging() {
        let long = "x".repeat(10_000);
        let StreamError::UnknownEvent(name) = StreamError::unknown_event(&long) else {
            unreachable!()
        };
        assert_eq!(name.len(), 64);
    }

    #[test]
    fn payload_size_message_says_the_rule() {
        let e = StreamError::PayloadSize {
            len: 10,
            expected: 640,
            exact: true,
        };
        assert_eq!(e.to_string(), "payload of 10 bytes: expected exactly 640");
    }
}
