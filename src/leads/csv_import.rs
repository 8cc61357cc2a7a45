//! Streaming, sans-IO import of lead CSV files into `LeadRecord`s.
//!
//! `LeadCsvImporter::new(mapping, options)`, then `push(bytes)` as bytes arrive (each call
//! returns the rows completed so far), then `finish()`. The `ColumnMapping` names, for each of
//! our fields, the CSV header column that holds it; every other column goes to `custom`.
//! Errors are per row, with the physical line and the header name of the column; only a bad
//! header or mapping, or a limit, stops the import (`ImportError`).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::import::{
    Driver, Header, ImportBatch, ImportError, ImportOptions, ImportSummary, Row, RowDecoder,
    RowError,
};
use super::phone::{E164, normalize_phone};
use super::timezone::{LeadTimeZone, TimeZoneSource, infer_timezone, parse_timezone};

/// Which CSV header column holds each of our fields (JSON: `{"phone": "Phone Number", ...}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The phone number column (required).
    pub phone: String,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// IANA time zone name; when empty the zone is inferred from the number if unambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `express_written`, `verbal`, `none` or `revoked` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_status: Option<String>,
    /// Where consent was collected (web form URL, campaign, ...), free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_source: Option<String>,
    /// When consent was given: RFC 3339 timestamp or `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_at: Option<String>,
    /// The consent language the lead agreed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_text: Option<String>,
    /// The lead's id in the customer's own system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The consent a lead gave to be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Prior express written consent.
    ExpressWritten,
    /// Consent given orally.
    Verbal,
    /// No consent on record.
    None,
    /// Consent was given and later withdrawn.
    Revoked,
}

impl ConsentStatus {
    /// The wire name (`express_written`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentStatus::ExpressWritten => "express_written",
            ConsentStatus::Verbal => "verbal",
            ConsentStatus::None => "none",
            ConsentStatus::Revoked => "revoked",
        }
    }
}

impl FromStr for ConsentStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        [
            ConsentStatus::ExpressWritten,
            ConsentStatus::Verbal,
            ConsentStatus::None,
            ConsentStatus::Revoked,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
        .ok_or(())
    }
}

/// When consent was given: an instant (RFC 3339) or only a calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentAt {
    /// An exact instant, from an RFC 3339 timestamp with offset.
    Instant(jiff::Timestamp),
    /// A calendar date (`YYYY-MM-DD`) with no time of day or zone.
    Date(jiff::civil::Date),
}

impl FromStr for ConsentAt {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        if s.len() == 10 {
            return s.parse().map(ConsentAt::Date).map_err(|_| ());
        }
        if s.len() > 64 || !s.contains('T') && !s.contains('t') && !s.contains(' ') {
            return Err(());
        }
        s.parse().map(ConsentAt::Instant).map_err(|_| ())
    }
}

impl fmt::Display for ConsentAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsentAt::Instant(t) => write!(f, "{t}"),
            ConsentAt::Date(d) => write!(f, "{d}"),
        }
    }
}

impl serde::Serialize for ConsentAt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One lead ready to store.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LeadRecord {
    /// Physical line of the row in the file.
    pub line: u64,
    /// The number, normalized.
    pub phone: E164,
    /// Given name, trimmed.
    pub first_name: Option<String>,
    /// Family name, trimmed.
    pub last_name: Option<String>,
    /// Email address, trimmed.
    pub email: Option<String>,
    /// Explicit or inferred zone; `None` means use the account default.
    pub timezone: Option<LeadTimeZone>,
    /// Consent status, if the column is mapped and filled.
    pub consent_status: Option<ConsentStatus>,
    /// Consent source, free text.
    pub consent_source: Option<String>,
    /// When consent was given.
    pub consent_at: Option<ConsentAt>,
    /// Consent language.
    pub consent_text: Option<String>,
    /// The customer's id for the lead.
    pub external_id: Option<String>,
    /// Every unmapped column: header name -> value as in the file.
    pub custom: Map<String, Value>,
}

/// The push importer for lead CSV files.
pub struct LeadCsvImporter {
    driver: Driver<LeadDecoder>,
}

impl LeadCsvImporter {
    /// An importer for files laid out as `mapping` says.
    pub fn new(mapping: ColumnMapping, options: ImportOptions) -> Self {
        let region = options.default_region;
        LeadCsvImporter {
            driver: Driver::new(LeadDecoder { mapping, region }, options),
        }
    }

    /// Feeds the next bytes of the file; returns the rows completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<ImportBatch<LeadRecord>, ImportError> {
        self.driver.push(bytes)
    }

    /// Ends the file; returns the last rows (a final line may lack its newline).
    pub fn finish(&mut self) -> Result<ImportBatch<LeadRecord>, ImportError> {
        self.driver.finish()
    }

    /// Imported / skipped / failed counts so far.
    pub fn summary(&self) -> ImportSummary {
        self.driver.summary()
    }
}

struct LeadDecoder {
    mapping: ColumnMapping,
    region: Option<super::phone::Region>,
}

struct LeadPlan {
    phone: usize,
    first_name: Option<usize>,
    last_name: Option<usize>,
    email: Option<usize>,
    timezone: Option<usize>,
    consent_status: Option<usize>,
    consent_source: Option<usize>,
    consent_at: Option<usize>,
    consent_text: Option<usize>,
    external_id: Option<usize>,
    /// Unmapped columns, by position.
    custom: Vec<usize>,
}

impl RowDecoder for LeadDecoder {
    type Plan = LeadPlan;
    type Record = LeadRecord;

    fn plan(&self, h: &Header) -> Result<LeadPlan, ImportError> {
        let m = &self.mapping;
        let plan = LeadPlan {
            phone: h.find("phone", &m.phone)?,
            first_name: h.find_opt("first_name", &m.first_name)?,
            last_name: h.find_opt("last_name", &m.last_name)?,
            email: h.find_opt("email", &m.email)?,
            timezone: h.find_opt("timezone", &m.timezone)?,
            consent_status: h.find_opt("consent_status", &m.consent_status)?,
            consent_source: h.find_opt("consent_source", &m.consent_source)?,
            consent_at: h.find_opt("consent_at", &m.consent_at)?,
            consent_text: h.find_opt("consent_text", &m.consent_text)?,
            external_id: h.find_opt("external_id", &m.external_id)?,
            custom: Vec::new(),
        };
        let mapped = [
            Some(plan.phone),
            plan.first_name,
            plan.last_name,
            plan.email,
            plan.timezone,
            plan.consent_status,
            plan.consent_source,
            plan.consent_at,
            plan.consent_text,
            plan.external_id,
        ];
        let custom = (0..h.names.len())
            .filter(|i| !mapped.contains(&Some(*i)))
            .collect();
        Ok(LeadPlan { custom, ..plan })
    }

    fn decode(
        &self,
        p: &LeadPlan,
        h: &Header,
        row: &Row<'_>,
        errors: &mut Vec<RowError>,
    ) -> Option<(E164, LeadRecord)> {
        let line = row.line;
        let mut fail = |col: usize, reason: String| {
            errors.push(RowError {
                line,
                column: Some(h.names[col].clone()),
                reason,
            });
        };
        let text = |col: Option<usize>| col.and_then(|i| row.get(i)).map(str::to_string);

        let phone = match normalize_phone(row.get(p.phone).unwrap_or(""), self.region) {
            Ok(n) => Some(n),
            Err(e) => {
                fail(p.phone, e.to_string());
                None
            }
        };
        let email = text(p.email);
        if let (Some(i), Some(e)) = (p.email, &email)
            && !looks_like_email(e)
        {
            fail(i, "not an email address".into());
        }
        let mut timezone = None;
        if let Some(i) = p.timezone
            && let Some(v) = row.get(i)
        {
            match parse_timezone(v) {
                Ok(name) => {
                    timezone = Some(LeadTimeZone {
                        name,
                        source: TimeZoneSource::Explicit,
                    })
                }
                Err(e) => fail(i, e.to_string()),
            }
        }
        let mut consent_status = None;
        if let Some(i) = p.consent_status
            && let Some(v) = row.get(i)
        {
            match v.parse() {
                Ok(c) => consent_status = Some(c),
                Err(()) => fail(
                    i,
                    format!(
                        "unknown consent status {:?} (expected express_written, verbal, none or revoked)",
                        cut(v)
                    ),
                ),
            }
        }
        let mut consent_at = None;
        if let Some(i) = p.consent_at
            && let Some(v) = row.get(i)
        {
            match v.parse() {
                Ok(c) => consent_at = Some(c),
                Err(()) => fail(
                    i,
                    format!(
                        "bad consent date {:?} (expected RFC 3339 like 2024-05-01T14:30:00Z, or YYYY-MM-DD)",
                        cut(v)
                    ),
                ),
            }
        }
        let phone = phone?;
        if timezone.is_none() {
            timezone = infer_timezone(&phone).map(|name| LeadTimeZone {
                name,
                source: TimeZoneSource::Inferred,
            });
        }
        let custom = p
            .custom
            .iter()
            .map(|&i| (h.names[i].clone(), Value::String(row.raw(i).to_string())))
            .collect();
        let record = LeadRecord {
            line,
            phone: phone.clone(),
            first_name: text(p.first_name),
            last_name: text(p.last_name),
            email,
            timezone,
            consent_status,
            consent_source: text(p.consent_source),
            consent_at,
            consent_text: text(p.consent_text),
            external_id: text(p.external_id),
            custom,
        };
        Some((phone, record))
    }
}

/// A value for an error message, cut to 40 characters.
fn cut(v: &str) -> String {
    v.chars().take(40).collect()
}

/// A light check: one `@`, something before it, a dot in the domain, no spaces.
fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
}
