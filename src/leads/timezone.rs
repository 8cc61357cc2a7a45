//! Lead time zones: validate an explicit IANA name, or infer one from a number when that is
//! unambiguous.
//!
//! Names are checked against the tzdb bundled into the binary by `jiff` (feature
//! `tzdb-bundle-always`), so validation is the same on every host whatever its
//! `/usr/share/zoneinfo` holds. `jiff` was picked over `chrono-tz` because the rest of the
//! module (consent dates) needs RFC 3339 and civil-date parsing too, and `jiff` gives both
//! plus tz lookup in one crate with case-insensitive names and canonical spelling back.

use std::fmt;

use super::phone::E164;
use super::tz_tables::{NANP_AREA_CODES, SINGLE_ZONE_COUNTRIES};

/// Longest name accepted; the longest tzdb name is about 30 characters.
const MAX_NAME_LEN: usize = 64;

/// A time zone name that exists in the bundled tzdb, in its canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// The IANA name, e.g. `America/New_York`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a time zone name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeZoneError {
    /// The cell was empty.
    #[error("time zone is empty")]
    Empty,
    /// Not a name in the IANA time zone database (the name is echoed, cut to 64 characters).
    #[error("unknown IANA time zone {0:?} (expected a name like America/New_York)")]
    Unknown(String),
}

/// Validates an explicit IANA time zone name (case-insensitive) and returns its canonical form.
pub fn parse_timezone(name: &str) -> Result<TimeZoneName, TimeZoneError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TimeZoneError::Empty);
    }
    let unknown = || TimeZoneError::Unknown(name.chars().take(MAX_NAME_LEN).collect());
    // Only names: no POSIX TZ strings or offsets, which carry no DST rules of a place.
    if name.len() > MAX_NAME_LEN || !name.bytes().all(is_name_byte) {
        return Err(unknown());
    }
    let tz = jiff::tz::db().get(name).map_err(|_| unknown())?;
    let canonical = tz.iana_name().unwrap_or(name);
    Ok(TimeZoneName(canonical.to_string()))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+')
}

/// Where a lead's time zone came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimeZoneSource {
    /// Given in the file.
    Explicit,
    /// Inferred from the phone number (single-zone country or NANP area code).
    Inferred,
}

/// A lead's time zone and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeadTimeZone {
    /// The IANA name.
    pub name: TimeZoneName,
    /// Explicit in the file, or inferred from the number.
    pub source: TimeZoneSource,
}

/// Infers a time zone from a number only when unambiguous: a NANP area code that lies in one
/// zone, or a country with a single zone. `None` means the caller uses the account default.
pub fn infer_timezone(phone: &E164) -> Option<TimeZoneName> {
    let zone = if phone.as_str().starts_with("+1") {
        let code = phone.nanp_area_code()?;
        let i = NANP_AREA_CODES
            .binary_search_by_key(&code, |&(c, _)| c)
            .ok()?;
        NANP_AREA_CODES[i].1?
    } else {
        let region = phone.region()?;
        let i = SINGLE_ZONE_COUNTRIES
            .binary_search_by_key(&region.as_str(), |&(c, _)| c)
            .ok()?;
        SINGLE_ZONE_COUNTRIES[i].1
    };
    Some(TimeZoneName(zone.to_string()))
}

/// Whether a NANP area code is in the table at all (geographic and current), whatever its zone.
pub fn is_known_nanp_area_code(code: u16) -> bool {
    NANP_AREA_CODES
        .binary_search_by_key(&code, |&(c, _)| c)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::phone::normalize_phone;

    fn e164(s: &str) -> E164 {
        normalize_phone(s, None).unwrap()
    }

    fn inferred(s: &str) -> Option<String> {
        infer_timezone(&e164(s)).map(|z| z.as_str().to_string())
    }

    #[test]
    fn explicit_names_are_validated_and_canonicalized() {
        assert_eq!(
            parse_timezone("America/New_York").unwrap().as_str(),
            "America/New_York"
        );
        assert_eq!(
            parse_timezone(" america/new_york ").unwrap().as_str(),
            "America/New_York"
        );
        assert_eq!(
            parse_timezone("Europe/Paris").unwrap().as_str(),
            "Europe/Paris"
        );
        assert_eq!(parse_timezone("UTC").unwrap().as_str(), "UTC");
        assert_eq!(parse_timezone(""), Err(TimeZoneError::Empty));
        assert!(matches!(
            parse_timezone("America/Nowhere"),
            Err(TimeZoneError::Unknown(_))
        ));
        assert!(matches!(
            parse_timezone("EST5EDT,M3.2.0,M11.1.0"),
            Err(TimeZoneError::Unknown(_))
        ));
        assert!(matches!(
            parse_timezone("../../etc/passwd"),
            Err(TimeZoneError::Unknown(_))
        ));
        assert!(
            matches!(parse_timezone(&"A".repeat(500)), Err(TimeZoneError::Unknown(n)) if n.len() == 64)
        );
    }

    #[test]
    fn nanp_single_zone_area_codes() {
        assert_eq!(
            inferred("+14155552671").as_deref(),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            inferred("+12125551234").as_deref(),
            Some("America/New_York")
        );
        assert_eq!(inferred("+13125551234").as_deref(), Some("America/Chicago"));
        assert_eq!(inferred("+13035551234").as_deref(), Some("America/Denver"));
        assert_eq!(inferred("+16025551234").as_deref(), Some("America/Phoenix"));
        assert_eq!(
            inferred("+18085551234").as_deref(),
            Some("Pacific/Honolulu")
        );
        assert_eq!(inferred("+14165551234").as_deref(), Some("America/Toronto"));
        assert_eq!(inferred("+18765551234").as_deref(), Some("America/Jamaica"));
    }

    #[test]
    fn nanp_area_codes_spanning_zones_are_ambiguous() {
        // 208 Idaho (Pacific/Mountain), 850 Florida panhandle, 605 South Dakota, 907 Alaska.
        for n in [
            "+12085551234",
            "+18505551234",
            "+16055551234",
            "+19075551234",
        ] {
            assert_eq!(inferred(n), None, "{n}");
            assert!(is_known_nanp_area_code(e164(n).nanp_area_code().unwrap()));
        }
    }

    #[test]
    fn single_zone_countries_only() {
        assert_eq!(inferred("+442079460958").as_deref(), Some("Europe/London"));
        assert_eq!(inferred("+33142685300").as_deref(), Some("Europe/Paris"));
        assert_eq!(inferred("+4930123456").as_deref(), Some("Europe/Berlin"));
        assert_eq!(inferred("+81312345678").as_deref(), Some("Asia/Tokyo"));
        // Australia, Brazil, Russia, Mexico and Spain have several zones.
        assert_eq!(inferred("+61212345678"), None);
        assert_eq!(inferred("+5511912345678"), None);
        assert_eq!(inferred("+74951234567"), None);
        assert_eq!(inferred("+34912345678"), None);
    }

    #[test]
    fn tables_are_sorted_unique_and_name_real_zones() {
        assert!(NANP_AREA_CODES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(SINGLE_ZONE_COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(NANP_AREA_CODES.len() > 400);
        for &(code, zone) in NANP_AREA_CODES {
            assert!((201..=999).contains(&code), "{code}");
            if let Some(zone) = zone {
                assert_eq!(
                    parse_timezone(zone).map(|z| z.0).as_deref(),
                    Ok(zone),
                    "{code}"
                );
            }
        }
        for &(cc, zone) in SINGLE_ZONE_COUNTRIES {
            assert!(jiff::tz::db().get(zone).is_ok(), "{cc} {zone}");
            assert!(cc != "US" && cc != "CA");
        }
    }
}
