//! RTP media plumbing, sans-IO: the RTP header view, the port allocator, the adaptive jitter
//! buffer, RFC 4733 telephone-events and RTCP packets with reception statistics. The RTP
//! session that ties them to a leg (and SRTP) is the media issue's next slice.

pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod ports;
pub mod rtcp;
pub mod session;
pub mod srtp;
