//! The streaming import driver shared by the lead and DNC importers, and their report types.
//!
//! A `RowDecoder` turns a header into a column plan and each record into a typed row; the
//! driver feeds bytes through the record splitter, enforces the row limit, drops repeated
//! numbers (reporting the line of the first), and counts imported / skipped / failed rows.

use std::collections::HashMap;

use super::csv_records::{RawRecord, RecordProblem, RecordSplitter};
use super::phone::{E164, Region};

/// Limits and defaults for an import.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Region for numbers written without a country code (`(415) 555-2671` with `US`).
    pub default_region: Option<Region>,
    /// Largest field in bytes; a larger one fails its row (the header: the whole import).
    pub max_field_bytes: usize,
    /// Most columns in a row; more fail the row (the header: the whole import).
    pub max_columns: usize,
    /// Most data rows in a file; one more stops the import.
    pub max_rows: u64,
    /// Most distinct numbers whose first line is remembered to report a repeat as
    /// `{line, first_line}`. Past it the index stops growing (memory stays flat for any file
    /// size) and a repeated number is left to the store, which refuses a number already in
    /// the campaign (the lead importer; DNC entries merge).
    pub max_tracked_numbers: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            default_region: None,
            max_field_bytes: 64 * 1024,
            max_columns: 256,
            max_rows: 1_000_000,
            max_tracked_numbers: 200_000,
        }
    }
}

/// A row that was not imported, with the physical line it starts on and the column at fault.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// Physical line in the file (1-based; a quoted field spanning lines counts every line).
    pub line: u64,
    /// Header name of the offending column; `None` when the row as a whole is wrong.
    pub column: Option<String>,
    /// What is wrong, for a person; never contains a phone number.
    pub reason: String,
}

/// A row skipped because its number already appeared earlier in the same file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRow {
    /// Physical line of the skipped row.
    pub line: u64,
    /// Line of the row that first had this number (and was imported).
    pub first_line: u64,
}

/// Rows, skips and errors produced by one `push` or `finish`, in file order within each list.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ImportBatch<T> {
    /// Rows ready to store.
    pub records: Vec<T>,
    /// Duplicate numbers skipped.
    pub skipped: Vec<SkippedRow>,
    /// Rows that failed, one entry per problem (a row may have several).
    pub errors: Vec<RowError>,
}

impl<T> Default for ImportBatch<T> {
    fn default() -> Self {
        ImportBatch {
            records: Vec::new(),
            skipped: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<T> ImportBatch<T> {
    /// Appends another batch (used to collect a whole file's results).
    pub fn append(&mut self, mut other: ImportBatch<T>) {
        self.records.append(&mut other.records);
        self.skipped.append(&mut other.skipped);
        self.errors.append(&mut other.errors);
    }
}

/// Counts of data rows by outcome (blank rows are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Rows turned into records.
    pub imported: u64,
    /// Rows skipped as duplicates within the file.
    pub skipped: u64,
    /// Rows rejected with at least one `RowError`.
    pub failed: u64,
}

/// An error that stops the whole import (the header or the mapping is wrong, or a limit hit).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file has no header row.
    #[error("the file is empty: expected a header row")]
    Empty,
    /// A mapped column is not in the header.
    #[error("column {column:?} (mapped to {field}) is not in the header (line {line})")]
    MissingColumn {
        /// Our field name (`phone`, `email`, ...).
        field: &'static str,
        /// The header name the mapping asked for.
        column: String,
        /// Line of the header.
        line: u64,
    },
    /// The header reads as one column holding another delimiter: not a comma-separated file.
    #[error(
        "the header is one column holding {delimiter:?} (line {line}): the file must be comma-separated (save it as CSV with commas)"
    )]
    WrongDelimiter {
        /// The delimiter the header seems to use.
        delimiter: char,
        /// Line of the header.
        line: u64,
    },
    /// The same name appears twice in the header.
    #[error("column {column:?} appears more than once in the header (line {line})")]
    DuplicateColumn {
        /// The repeated header name.
        column: String,
        /// Line of the header.
        line: u64,
    },
    /// The mapping is unusable (an empty column name).
    #[error("invalid mapping: {0}")]
    InvalidMapping(String),
    /// The header is not valid UTF-8.
    #[error("header column {index} is not valid UTF-8 (line {line})")]
    HeaderNotUtf8 {
        /// 1-based column position.
        index: usize,
        /// Line of the header.
        line: u64,
    },
    /// The header has more columns than allowed.
    #[error("the header has more than {max} columns")]
    TooManyColumns {
        /// The limit.
        max: usize,
    },
    /// A header name is longer than allowed.
    #[error("header column {index} is longer than {max} bytes")]
    HeaderFieldTooLarge {
        /// 1-based column position.
        index: usize,
        /// The limit.
        max: usize,
    },
    /// The file has more data rows than allowed.
    #[error("the file has more than {max} rows (stopped at line {line})")]
    TooManyRows {
        /// The limit.
        max: u64,
        /// Line of the first row over the limit.
        line: u64,
    },
}

/// A header as read: trimmed names (empty ones become `column_N`) and the line it is on.
pub(crate) struct Header {
    pub names: Vec<String>,
    pub line: u64,
}

impl Header {
    /// Index of the column named `wanted` (trimmed, ASCII case-insensitive).
    pub fn find(&self, field: &'static str, wanted: &str) -> Result<usize, ImportError> {
        let wanted = wanted.trim();
        if wanted.is_empty() {
            return Err(ImportError::InvalidMapping(format!(
                "{field} maps to an empty column name"
            )));
        }
        if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(wanted))
        {
            return Ok(i);
        }
        if let [only] = self.names.as_slice()
            && let Some(delimiter) = [';', '\t', '|'].into_iter().find(|d| only.contains(*d))
        {
            return Err(ImportError::WrongDelimiter {
                delimiter,
                line: self.line,
            });
        }
        Err(ImportError::MissingColumn {
            field,
            column: wanted.to_string(),
            line: self.line,
        })
    }

    /// `find` for an optional mapping entry.
    pub fn find_opt(
        &self,
        field: &'static str,
        wanted: &Option<String>,
    ) -> Result<Option<usize>, ImportError> {
        wanted.as_deref().map(|w| self.find(field, w)).transpose()
    }
}

/// Turns a header into a plan and records into typed rows; one per file format.
pub(crate) trait RowDecoder {
    /// Column positions resolved from the header.
    type Plan;
    /// The typed row.
    type Record;
    /// Resolves the mapping against the header.
    fn plan(&self, header: &Header) -> Result<Self::Plan, ImportError>;
    /// Decodes one data row, pushing its problems to `errors`; `None` when it failed.
    fn decode(
        &self,
        plan: &Self::Plan,
        header: &Header,
        row: &Row<'_>,
        errors: &mut Vec<RowError>,
    ) -> Option<(E164, Self::Record)>;
}

/// A data row with the checks common to every format already done (UTF-8, field count).
pub(crate) struct Row<'a> {
    pub line: u64,
    fields: Vec<&'a str>,
}

impl<'a> Row<'a> {
    /// Field `i`, trimmed; `None` when empty.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let v = self.fields[i].trim();
        (!v.is_empty()).then_some(v)
    }

    /// Field `i` exactly as in the file.
    pub fn raw(&self, i: usize) -> &'a str {
        self.fields[i]
    }
}

/// The push driver: splitter + decoder + duplicate and limit bookkeeping.
pub(crate) struct Driver<D: RowDecoder> {
    splitter: RecordSplitter,
    state: DriverState<D>,
}

struct DriverState<D: RowDecoder> {
    decoder: D,
    options: ImportOptions,
    header: Option<(Header, D::Plan)>,
    /// First line of each number imported so far, by `E164::dedupe_key`, for the first
    /// `max_tracked_numbers` distinct numbers (16 bytes each; ~4.5 MB at the default).
    seen: HashMap<u64, u64>,
    rows: u64,
    summary: ImportSummary,
    fatal: Option<ImportError>,
    batch: ImportBatch<D::Record>,
    row_errors: Vec<RowError>,
}

impl<D: RowDecoder> Driver<D> {
    pub fn new(decoder: D, options: ImportOptions) -> Self {
        Driver {
            splitter: RecordSplitter::new(options.max_field_bytes, options.max_columns),
            state: DriverState {
                decoder,
                options,
                header: None,
                seen: HashMap::new(),
                rows: 0,
                summary: ImportSummary::default(),
                fatal: None,
                batch: ImportBatch::default(),
                row_errors: Vec::new(),
            },
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<ImportBatch<D::Record>, ImportError> {
        if let Some(e) = &self.state.fatal {
            return Err(e.clone());
        }
        let state = &mut self.state;
        self.splitter.push(bytes, &mut |rec| state.on_record(rec));
        self.take()
    }

    pub fn finish(&mut self) -> Result<ImportBatch<D::Record>, ImportError> {
        if let Some(e) = &self.state.fatal {
            return Err(e.clone());
        }
        let state = &mut self.state;
        self.splitter.finish(&mut |rec| state.on_record(rec));
        if self.state.fatal.is_none() && self.state.header.is_none() {
            self.state.fatal = Some(ImportError::Empty);
        }
        self.take()
    }

    pub fn summary(&self) -> ImportSummary {
        self.state.summary
    }

    fn take(&mut self) -> Result<ImportBatch<D::Record>, ImportError> {
        match &self.state.fatal {
            Some(e) => Err(e.clone()),
            None => Ok(std::mem::take(&mut self.state.batch)),
        }
    }
}

impl<D: RowDecoder> DriverState<D> {
    fn on_record(&mut self, rec: RawRecord<'_>) {
        if self.fatal.is_some() {
            return;
        }
        let Some((header, plan)) = self.header.take() else {
            match read_header(&rec, &self.options).and_then(|h| {
                let plan = self.decoder.plan(&h)?;
                Ok((h, plan))
            }) {
                Ok(hp) => self.header = Some(hp),
                Err(e) => self.fatal = Some(e),
            }
            return;
        };
        self.on_data(&rec, &header, &plan);
        self.header = Some((header, plan));
    }

    fn on_data(&mut self, rec: &RawRecord<'_>, header: &Header, plan: &D::Plan) {
        let line = rec.line;
        let Some(row) = check_row(rec, header, &self.options, &mut self.row_errors) else {
            if !self.row_errors.is_empty() && self.count_row(line) {
                self.fail_row(line);
            }
            return;
        };
        if !self.count_row(line) {
            return;
        }
        let decoded = self
            .decoder
            .decode(plan, header, &row, &mut self.row_errors);
        match decoded {
            Some((phone, record)) if self.row_errors.is_empty() => {
                let key = phone.dedupe_key();
                if let Some(&first_line) = self.seen.get(&key) {
                    self.batch.skipped.push(SkippedRow { line, first_line });
                    self.summary.skipped += 1;
                } else {
                    if self.seen.len() < self.options.max_tracked_numbers {
                        self.seen.insert(key, line);
                    }
                    self.batch.records.push(record);
                    self.summary.imported += 1;
                }
            }
            _ => self.fail_row(line),
        }
    }

    /// Counts a data row against `max_rows`; false (and a fatal error) past the limit.
    fn count_row(&mut self, line: u64) -> bool {
        self.rows += 1;
        if self.rows > self.options.max_rows {
            self.fatal = Some(ImportError::TooManyRows {
                max: self.options.max_rows,
                line,
            });
            self.row_errors.clear();
            return false;
        }
        true
    }

    fn fail_row(&mut self, line: u64) {
        if self.row_errors.is_empty() {
            // A decoder that fails must say why; keep the row visible regardless.
            self.row_errors.push(RowError {
                line,
                column: None,
                reason: "row rejected".into(),
            });
        }
        self.batch.errors.append(&mut self.row_errors);
        self.summary.failed += 1;
    }
}

fn read_header(rec: &RawRecord<'_>, options: &ImportOptions) -> Result<Header, ImportError> {
    match rec.problem {
        Some(RecordProblem::TooManyColumns) => {
            return Err(ImportError::TooManyColumns {
                max: options.max_columns,
            });
        }
        Some(RecordProblem::FieldTooLarge(i)) => {
            return Err(ImportError::HeaderFieldTooLarge {
                index: i + 1,
                max: options.max_field_bytes,
            });
        }
        None => {}
    }
    let mut names: Vec<String> = Vec::with_capacity(rec.len());
    for i in 0..rec.len() {
        let raw = rec.field(i).unwrap_or_default();
        let name = std::str::from_utf8(raw).map_err(|_| ImportError::HeaderNotUtf8 {
            index: i + 1,
            line: rec.line,
        })?;
        let name = match name.trim() {
            "" => format!("column_{}", i + 1),
            n => n.to_string(),
        };
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(ImportError::DuplicateColumn {
                column: name,
                line: rec.line,
            });
        }
        names.push(name);
    }
    Ok(Header {
        names,
        line: rec.line,
    })
}

/// Common row checks: limits, field count, UTF-8. `None` with no errors means a blank row.
fn check_row<'a>(
    rec: &RawRecord<'a>,
    header: &Header,
    options: &ImportOptions,
    errors: &mut Vec<RowError>,
) -> Option<Row<'a>> {
    let line = rec.line;
    let fields: Vec<&'a [u8]> = (0..rec.len()).filter_map(|i| rec.field(i)).collect();
    if fields.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) && rec.problem.is_none() {
        return None;
    }
    match rec.problem {
        Some(RecordProblem::TooManyColumns) => {
            errors.push(RowError {
                line,
                column: None,
                reason: format!("row has more than {} fields", options.max_columns),
            });
            return None;
        }
        Some(RecordProblem::FieldTooLarge(i)) => {
            errors.push(RowError {
                line,
                column: header.names.get(i).cloned(),
                reason: format!("field is longer than {} bytes", options.max_field_bytes),
            });
            return None;
        }
        None => {}
    }
    if fields.len() != header.names.len() {
        errors.push(RowError {
            line,
            column: None,
            reason: format!(
                "row has {} fields but the header has {}",
                fields.len(),
                header.names.len()
            ),
        });
        return None;
    }
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        match std::str::from_utf8(f) {
            // PostgreSQL cannot store a NUL in text: the row fails, never the import.
            Ok(s) if s.contains('\0') => {
                errors.push(RowError {
                    line,
                    column: Some(header.names[i].clone()),
                    reason: "contains a NUL character".into(),
                });
                out.push("");
            }
            Ok(s) => out.push(s),
            Err(_) => {
                errors.push(RowError {
                    line,
                    column: Some(header.names[i].clone()),
                    reason: "not valid UTF-8 (save the file as UTF-8 CSV)".into(),
                });
                out.push("");
            }
        }
    }
    if errors.is_empty() {
        Some(Row { line, fields: out })
    } else {
        None
    }
}
