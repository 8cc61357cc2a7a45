//! Lead files: phone normalization, time zones, and streaming CSV import (sans-IO).
//!
//! Nothing here touches a database, the network or the clock: the importers are fed bytes
//! and return typed rows and row errors; `store` and `control` persist and serve them.

pub mod csv_import;
mod csv_records;
pub mod dnc_csv;
pub mod import;
pub mod phone;
pub mod timezone;
mod tz_tables;

#[cfg(test)]
mod tests;
