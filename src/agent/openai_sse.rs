//! Sans-IO decoding of an OpenAI-compatible Chat Completions stream into [`LlmDelta`]s.
//!
//! Two layers, both fed arbitrary byte chunks and never touching a socket or a clock:
//! - [`SseDecoder`]: the Server-Sent-Events line protocol (WHATWG HTML "event stream
//!   interpretation"): lines end in CRLF, LF or CR (also split across chunks), `:` lines are
//!   comments (keep-alives), `data:` lines of one event are joined with `\n`, an empty line
//!   dispatches the event, a leading BOM is skipped, an unterminated event at end of stream is
//!   discarded.
//! - [`ChatStreamDecoder`]: the `chat.completion.chunk` objects OpenAI, vLLM, Ollama, llama.cpp
//!   server and Groq send as `data:` payloads: `choices[0].delta.content`,
//!   `choices[0].delta.tool_calls[]` fragments (by `index`), `choices[0].finish_reason`,
//!   usage-only chunks with empty `choices`, `{"error": {...}}` objects sent inside the stream,
//!   and the `data: [DONE]` terminator.

use serde::Deserialize;

use super::stages::LlmDelta;

/// Largest event (joined `data` lines) or line accepted; a peer sending more is broken or hostile.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Longest provider text copied into an error message.
const MAX_ERROR_TEXT: usize = 300;

/// Why a Chat Completions stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatStreamError {
    /// A line or an event exceeded [`MAX_EVENT_BYTES`].
    #[error("stream event larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
    /// A `data` payload was not a valid chunk object.
    #[error("malformed stream chunk: {0}")]
    Malformed(String),
    /// The provider reported an error inside the stream.
    #[error("provider reported: {0}")]
    Provider(String),
    /// The stream ended before `[DONE]` or a finish reason.
    #[error("stream ended before the completion finished")]
    Truncated,
}

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when one was given (the default type `message` is `None`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into Server-Sent Events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next chunk belongs to that terminator.
    after_cr: bool,
    /// Whether the start of the stream (and a possible BOM) has been seen.
    started: bool,
    /// `data` of the event being collected.
    data: String,
    /// Whether any `data` line was seen for the event being collected.
    has_data: bool,
    /// `event` of the event being collected.
    event: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes; dispatched events are appended to `out`.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ChatStreamError> {
        if !self.started {
            // The BOM may itself arrive split; wait until three bytes (or a mismatch) are known.
            let mut probe = std::mem::take(&mut self.line);
            probe.extend_from_slice(bytes);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if probe.len() < BOM.len() && BOM.starts_with(&probe) {
                self.line = probe;
                return Ok(());
            }
            self.started = true;
            let rest = probe.strip_prefix(BOM).unwrap_or(&probe).to_vec();
            return self.feed_lines(&rest, out);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        self.feed_lines(bytes, out)
    }

    fn feed_lines(
        &mut self,
        mut bytes: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ChatStreamError> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = bytes.split_at(end);
            self.push_line_bytes(head)?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            self.line = line;
            self.line.clear();
            bytes = &tail[1..];
            if tail[0] == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.push_line_bytes(bytes)
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), ChatStreamError> {
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(ChatStreamError::EventTooLarge);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(
        &mut self,
        line: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ChatStreamError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.has_data = false;
            self.data.clear();
            self.event = None;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(ChatStreamError::EventTooLarge);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&String::from_utf8_lossy(value));
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id` and `retry` matter only to reconnecting EventSource clients; a completion is
            // never resumed. Unknown fields are ignored, as the standard says.
            _ => {}
        }
        Ok(())
    }
}

/// Decodes a Chat Completions SSE stream into [`LlmDelta`]s.
#[derive(Debug, Default)]
pub struct ChatStreamDecoder {
    /// The SSE layer.
    sse: SseDecoder,
    /// Events of the current feed (kept to reuse its allocation).
    events: Vec<SseEvent>,
    /// `data: [DONE]` arrived: the stream is complete and later bytes are ignored.
    done: bool,
    /// A finish reason arrived (some servers close without `[DONE]`).
    finished: bool,
    /// A decoding error was returned; the stream is unusable.
    failed: bool,
}

impl ChatStreamDecoder {
    /// A decoder at the start of a response body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds body bytes; the deltas they complete are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LlmDelta>) -> Result<(), ChatStreamError> {
        if self.done || self.failed {
            return Ok(());
        }
        let result = self.feed_inner(bytes, out);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn feed_inner(&mut self, bytes: &[u8], out: &mut Vec<LlmDelta>) -> Result<(), ChatStreamError> {
        let mut events = std::mem::take(&mut self.events);
        let result = self.sse.feed(bytes, &mut events).and_then(|()| {
            for ev in events.drain(..) {
                if self.done {
                    break;
                }
                self.on_event(&ev, out)?;
            }
            Ok(())
        });
        events.clear();
        self.events = events;
        result
    }

    /// Whether `data: [DONE]` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The body ended: fine after `[DONE]` or a finish reason, [`ChatStreamError::Truncated`] otherwise.
    pub fn finish(&mut self) -> Result<(), ChatStreamError> {
        if self.done || self.finished || self.failed {
            Ok(())
        } else {
            Err(ChatStreamError::Truncated)
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<LlmDelta>) -> Result<(), ChatStreamError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        match ev.event.as_deref() {
            None | Some("message") => {}
            Some("error") => return Err(ChatStreamError::Provider(error_text(data))),
            // Chat Completions defines no named events; a proxy's extras are not chunks.
            Some(_) => return Ok(()),
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            ChatStreamError::Malformed(format!(
                "{} (line {}, column {})",
                category(&e),
                e.line(),
                e.column()
            ))
        })?;
        if let Some(err) = chunk.error {
            return Err(ChatStreamError::Provider(err.describe()));
        }
        // Only `n = 1` is requested, so the first choice is the reply.
        let Some(choice) = chunk.choices.into_iter().flatten().next() else {
            return Ok(()); // a usage-only chunk, or a role/keep-alive chunk with no choices
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content
                && !text.is_empty()
            {
                out.push(LlmDelta::Text(text));
            }
            for (pos, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                let function = call.function.unwrap_or_default();
                out.push(LlmDelta::ToolCall {
                    // Servers that send whole calls without `index` list them in order.
                    index: call.index.unwrap_or(pos),
                    id: call.id.filter(|s| !s.is_empty()),
                    name: function.name.filter(|s| !s.is_empty()),
                    arguments: function.arguments.unwrap_or_default(),
                });
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finished = true;
            out.push(LlmDelta::Done { reason });
        }
        Ok(())
    }
}

/// The kind of a JSON error, without echoing input (which could be anything the peer sent).
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// A readable message from an error payload: `{"error": {...}}`, `{"message": ..}` or raw text.
pub fn error_text(data: &str) -> String {
    #[derive(Deserialize)]
    struct Wrapped {
        error: ErrorBody,
    }
    if let Ok(w) = serde_json::from_str::<Wrapped>(data) {
        return w.error.describe();
    }
    if let Ok(e) = serde_json::from_str::<ErrorBody>(data)
        && e.message.is_some()
    {
        return e.describe();
    }
    truncate(data.trim())
}

/// `s` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary.
fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// One `chat.completion.chunk` (only the fields used; everything else is ignored).
#[derive(Deserialize)]
struct Chunk {
    /// Absent or `null` in some servers' usage-only chunk.
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    /// Set instead of `choices` when the provider fails mid-stream.
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize, Default)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// OpenAI's error object: `{"message", "type", "param", "code"}` (`code` may be a number elsewhere).
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl ErrorBody {
    fn describe(&self) -> String {
        let mut s = truncate(self.message.as_deref().unwrap_or("(no message)"));
        let tag = |v: &Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(t)) if !t.is_empty() => Some(truncate(t)),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let tags: Vec<String> = [tag(&self.kind), tag(&self.code)]
            .into_iter()
            .flatten()
            .collect();
        if !tags.is_empty() {
            s.push_str(&format!(" ({})", tags.join(", ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sse(input: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for part in input {
            d.feed(part, &mut out).unwrap();
        }
        out
    }

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.to_owned(),
        }
    }

    fn decode(parts: &[&[u8]]) -> Result<Vec<LlmDelta>, ChatStreamError> {
        let mut d = ChatStreamDecoder::new();
        let mut out = Vec::new();
        for part in parts {
            d.feed(part, &mut out)?;
        }
        d.finish()?;
        Ok(out)
    }

    /// A stream shaped like OpenAI's: role chunk, text, two parallel tool calls with split
    /// arguments, finish reason, usage-only chunk, `[DONE]`; with a comment and CRLF lines.
    const STREAM: &str = concat!(
        ": keep-alive\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sure, \"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\u{e9} \u{1f600}\"},\"finish_reason\":null}]}\r\r",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"set_outcome\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"dispo\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"end_call\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"sition\\\":\\\"booked\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n",
        "data: [DONE]\n\n",
    );

    fn frag(index: usize, id: Option<&str>, name: Option<&str>, args: &str) -> LlmDelta {
        LlmDelta::ToolCall {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        }
    }

    fn expected() -> Vec<LlmDelta> {
        vec![
            LlmDelta::Text("Sure, ".into()),
            LlmDelta::Text("caf\u{e9} \u{1f600}".into()),
            frag(0, Some("call_a"), Some("set_outcome"), ""),
            frag(0, None, None, "{\"dispo"),
            frag(1, Some("call_b"), Some("end_call"), "{}"),
            frag(0, None, None, "sition\":\"booked\"}"),
            LlmDelta::Done {
                reason: "tool_calls".into(),
            },
        ]
    }

    #[test]
    fn sse_line_endings_comments_and_multiline_data() {
        let events =
            sse(&[b"\xEF\xBB\xBF: hi\r\ndata: a\r\ndata:b\rdata\n\nevent: error\ndata: x\n\n"]);
        assert_eq!(
            events,
            [
                data("a\nb\n"),
                SseEvent {
                    event: Some("error".into()),
                    data: "x".into()
                }
            ]
        );
    }

    #[test]
    fn sse_crlf_split_between_chunks_is_one_terminator() {
        // `\r` ends the line; the `\n` in the next chunk must not make an empty line (dispatch).
        let events = sse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [data("a\nb")]);
    }

    #[test]
    fn sse_split_bom_and_utf8_are_reassembled() {
        let events = sse(&[b"\xEF", b"\xBB", b"\xBFdata: \xC3", b"\xA9\n\n"]);
        assert_eq!(events, [data("\u{e9}")]);
    }

    #[test]
    fn sse_unterminated_event_is_not_dispatched() {
        assert_eq!(sse(&[b"data: a\n"]), []);
        assert_eq!(sse(&[b"data: a"]), []);
    }

    #[test]
    fn sse_oversized_line_is_an_error() {
        let mut d = SseDecoder::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(
            d.feed(&big, &mut Vec::new()),
            Err(ChatStreamError::EventTooLarge)
        );
    }

    #[test]
    fn openai_stream_decodes_to_deltas() {
        assert_eq!(decode(&[STREAM.as_bytes()]).unwrap(), expected());
    }

    #[test]
    fn every_two_way_and_byte_by_byte_split_gives_the_same_deltas() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(decode(&[a, b]).unwrap(), expected(), "split at {i}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode(&singles).unwrap(), expected());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_deltas(cuts in proptest::collection::vec(0..STREAM.len(), 0..40)) {
            let bytes = STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut start = 0;
            for c in cuts {
                parts.push(&bytes[start..c]);
                start = c;
            }
            parts.push(&bytes[start..]);
            prop_assert_eq!(decode(&parts).unwrap(), expected());
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = ChatStreamDecoder::new();
            let mut out = Vec::new();
            for c in &chunks {
                let _ = d.feed(c, &mut out);
            }
            let _ = d.finish();
        }
    }

    #[test]
    fn bytes_after_done_are_ignored() {
        let out = decode(&[b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\ndata: {bad\n\n"]);
        assert_eq!(out.unwrap(), [LlmDelta::Text("hi".into())]);
    }

    #[test]
    fn error_object_inside_the_stream_is_a_provider_error() {
        let err = decode(&[b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"])
            .unwrap_err();
        assert_eq!(
            err,
            ChatStreamError::Provider("The server had an error (server_error)".into())
        );
        let err = decode(&[b"event: ping\ndata: {}x\n\nevent: error\ndata: {\"message\":\"overloaded\",\"code\":503}\n\n"])
            .unwrap_err();
        assert_eq!(err, ChatStreamError::Provider("overloaded (503)".into()));
    }

    #[test]
    fn malformed_json_is_an_error_that_does_not_echo_the_input() {
        let err = decode(&[b"data: {\"choices\":[{\"delta\":{\"content\":\"secret-ish\"\n\n"])
            .unwrap_err();
        assert!(matches!(err, ChatStreamError::Malformed(_)), "{err:?}");
        assert!(!err.to_string().contains("secret-ish"), "{err}");
        let err = decode(&[b"data: {\"choices\":\"nope\"}\n\n"]).unwrap_err();
        assert!(err.to_string().contains("unexpected JSON shape"), "{err}");
    }

    #[test]
    fn end_without_done_or_finish_reason_is_truncated() {
        let err =
            decode(&[b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"]).unwrap_err();
        assert_eq!(err, ChatStreamError::Truncated);
        // A finish reason without `[DONE]` (some local servers) completes the stream.
        let out = decode(&[b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"])
            .unwrap();
        assert_eq!(
            out,
            [LlmDelta::Done {
                reason: "stop".into()
            }]
        );
    }

    #[test]
    fn null_choices_content_and_missing_index_are_tolerated() {
        let out = decode(&[concat!(
            "data: {\"choices\":null,\"usage\":{}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":null}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes()])
        .unwrap();
        assert_eq!(
            out,
            [
                frag(0, Some("a"), Some("f"), "{}"),
                frag(1, Some("b"), Some("g"), "{}")
            ]
        );
    }

    #[test]
    fn error_text_shapes() {
        assert_eq!(
            error_text(
                "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}"
            ),
            "Incorrect API key provided (invalid_request_error, invalid_api_key)"
        );
        assert_eq!(error_text("{\"message\":\"m\"}"), "m");
        assert_eq!(error_text("  Bad Gateway \n"), "Bad Gateway");
        let long = "\u{e9}".repeat(400);
        let t = error_text(&long);
        assert!(
            t.len() <= MAX_ERROR_TEXT + 3 && t.ends_with("..."),
            "{}",
            t.len()
        );
    }
}
