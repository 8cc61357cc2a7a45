//! SIP signalling, sans-IO (RFC 3261 and friends); `transport` is the thin tokio driver.

pub mod digest;
pub mod dtmf_info;
pub mod endpoint;
pub mod headers;
pub mod message;
pub mod parse;
pub mod sdp;
pub mod sdp_crypto;
pub mod tls;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;
