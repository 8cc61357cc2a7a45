//! Lead files: phone normalization, time zones, and streaming CSV import (sans-IO).
//!
//! Nothing here touches a database, the network or the clock: the importers are fed bytes
//! and return typed rows and row errors; `store` and `control` persist and serve them.

mod csv_records;
pub mod phone;
pub mod timezone;
mod tz_tables;
pub mod csv_import;
pub mod dnc_csv;
pub mod import;

#[cfg(test)]
mod tests;
