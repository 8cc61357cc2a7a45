//! The dialer: what decides whether, when and whom LeadsCaller may call. The compliance gate
//! (`gate`) is checked before any outbound INVITE; campaign pacing builds on it.

pub mod gate;
