//! Streaming, sans-IO import of do-not-call list CSV files: a phone column and an optional
//! reason column. Same driver, line numbers, limits and duplicate handling as lead import.

use super::import::{
    Driver, Header, ImportBatch, ImportError, ImportOptions, ImportSummary, Row, RowDecoder,
    RowError,
};
use super::phone::{E164, Region, normalize_phone};

/// Which header columns hold the number and the reason (JSON: `{"phone": "Number"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DncMapping {
    /// The phone number column (required).
    pub phone: String,
    /// Why the number must not be called (optional column, free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One number to add to the do-not-call list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DncEntry {
    /// Physical line of the row in the file.
    pub line: u64,
    /// The number, normalized.
    pub phone: E164,
    /// The reason, trimmed, when the column is mapped and filled.
    pub reason: Option<String>,
}

/// The push importer for DNC CSV files. Other columns are ignored.
pub struct DncCsvImporter {
    driver: Driver<DncDecoder>,
}

impl DncCsvImporter {
    /// An importer for files laid out as `mapping` says.
    pub fn new(mapping: DncMapping, options: ImportOptions) -> Self {
        let region = options.default_region;
        DncCsvImporter {
            driver: Driver::new(DncDecoder { mapping, region }, options),
        }
    }

    /// Feeds the next bytes of the file; returns the entries completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<ImportBatch<DncEntry>, ImportError> {
        self.driver.push(bytes)
    }

    /// Ends the file; returns the last entries.
    pub fn finish(&mut self) -> Result<ImportBatch<DncEntry>, ImportError> {
        self.driver.finish()
    }

    /// Imported / skipped / failed counts so far.
    pub fn summary(&self) -> ImportSummary {
        self.driver.summary()
    }
}

struct DncDecoder {
    mapping: DncMapping,
    region: Option<Region>,
}

struct DncPlan {
    phone: usize,
    reason: Option<usize>,
}

impl RowDecoder for DncDecoder {
    type Plan = DncPlan;
    type Record = DncEntry;

    fn plan(&self, h: &Header) -> Result<DncPlan, ImportError> {
        Ok(DncPlan {
            phone: h.find("phone", &self.mapping.phone)?,
            reason: h.find_opt("reason", &self.mapping.reason)?,
        })
    }

    fn decode(
        &self,
        p: &DncPlan,
        h: &Header,
        row: &Row<'_>,
        errors: &mut Vec<RowError>,
    ) -> Option<(E164, DncEntry)> {
        match normalize_phone(row.get(p.phone).unwrap_or(""), self.region) {
            Ok(phone) => {
                let entry = DncEntry {
                    line: row.line,
                    phone: phone.clone(),
                    reason: p.reason.and_then(|i| row.get(i)).map(str::to_string),
                };
                Some((phone, entry))
            }
            Err(e) => {
                errors.push(RowError {
                    line: row.line,
                    column: Some(h.names[p.phone].clone()),
                    reason: e.to_string(),
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::import::SkippedRow;

    fn run(m: DncMapping, input: &[u8], chunk: usize) -> (ImportBatch<DncEntry>, ImportSummary) {
        let o = ImportOptions {
            default_region: Some("US".parse().unwrap()),
            ..ImportOptions::default()
        };
        let mut imp = DncCsvImporter::new(m, o);
        let mut all = ImportBatch::default();
        for piece in input.chunks(chunk) {
            all.append(imp.push(piece).unwrap());
        }
        all.append(imp.finish().unwrap());
        (all, imp.summary())
    }

    #[test]
    fn phone_and_reason_with_bad_rows_and_duplicates() {
        let input = b"\xEF\xBB\xBFNumber,Why,Extra\r\n(415) 555-2671,\"asked, twice\",x\r\nnope,,\r\n+1 415 555 2671,dup,\r\n4155552672,,\r\n";
        let m = DncMapping {
            phone: "number".into(),
            reason: Some("WHY".into()),
        };
        let (batch, summary) = run(m.clone(), input, input.len());
        assert_eq!(run(m, input, 1), (batch.clone(), summary));
        assert_eq!(
            summary,
            ImportSummary {
                imported: 2,
                skipped: 1,
                failed: 1
            }
        );
        assert_eq!(batch.records[0].phone.as_str(), "+14155552671");
        assert_eq!(batch.records[0].reason.as_deref(), Some("asked, twice"));
        assert_eq!(batch.records[1].reason, None);
        assert_eq!(batch.records[1].line, 5);
        assert_eq!(
            batch.skipped,
            vec![SkippedRow {
                line: 4,
                first_line: 2
            }]
        );
        assert_eq!(batch.errors.len(), 1);
        assert_eq!(
            (batch.errors[0].line, batch.errors[0].column.as_deref()),
            (3, Some("Number"))
        );
    }

    #[test]
    fn missing_phone_column_is_fatal() {
        let mut imp = DncCsvImporter::new(
            DncMapping {
                phone: "Phone".into(),
                reason: None,
            },
            ImportOptions::default(),
        );
        let e = imp.push(b"Number\n+14155552671\n").unwrap_err();
        assert!(
            matches!(e, ImportError::MissingColumn { field: "phone", .. }),
            "{e}"
        );
    }
}
