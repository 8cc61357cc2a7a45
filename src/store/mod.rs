//! Persistent state: repositories and encryption at rest.

pub mod at_rest;
