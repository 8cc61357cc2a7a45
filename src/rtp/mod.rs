//! RTP media plumbing. This slice carries the port allocator and a minimal packet view used
//! by the echo app; the full RTP/RTCP session, jitter buffer and SRTP are the media issue.

pub mod packet;
pub mod ports;
