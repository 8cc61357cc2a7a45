//! SIP signalling, sans-IO (RFC 3261 and friends); `transport` is the thin tokio driver.

pub mod digest;
pub mod endpoint;
pub mod headers;
pub mod message;
pub mod parse;
pub mod sdp;
pub mod tls;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;
