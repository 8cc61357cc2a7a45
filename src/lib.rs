//! LeadsCaller: an open telephony core for AI voice agents.
//!
//! The SIP core (`sip`) is sans-IO: parsers and state machines fed bytes and time.
//! `sip::transport` and `call` are the thin tokio drivers around it.

pub mod agent;
pub mod call;
pub mod codec;
pub mod config;
pub mod control;
pub mod demo;
pub mod dial;
pub mod dialer;
pub mod leads;
pub mod leg;
pub mod media;
pub mod privacy;
pub mod rtp;
pub mod server;
pub mod sip;
pub mod store;
pub mod telemetry;
