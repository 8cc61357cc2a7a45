//! Importer tests with nasty CSV files.

use super::csv_import::{ColumnMapping, ConsentAt, ConsentStatus, LeadCsvImporter, LeadRecord};
use super::import::{ImportBatch, ImportError, ImportOptions, ImportSummary, RowError, SkippedRow};
use super::timezone::TimeZoneSource;

fn mapping() -> ColumnMapping {
    serde_json::from_str(
        r#"{"phone": "Phone", "first_name": "First", "last_name": "Last", "email": "Email",
            "timezone": "TZ", "consent_status": "Consent", "consent_source": "Source",
            "consent_at": "Consent At", "consent_text": "Consent Text", "external_id": "CRM Id"}"#,
    )
    .unwrap()
}

fn us_options() -> ImportOptions {
    ImportOptions {
        default_region: Some("US".parse().unwrap()),
        ..ImportOptions::default()
    }
}

type Outcome = Result<(ImportBatch<LeadRecord>, ImportSummary), ImportError>;

/// Imports `input` pushed in `chunk`-byte pieces.
fn import_chunked(m: ColumnMapping, o: ImportOptions, input: &[u8], chunk: usize) -> Outcome {
    let mut imp = LeadCsvImporter::new(m, o);
    let mut all = ImportBatch::default();
    for piece in input.chunks(chunk.max(1)) {
        all.append(imp.push(piece)?);
    }
    all.append(imp.finish()?);
    Ok((all, imp.summary()))
}

/// Imports in one push, and checks that byte-at-a-time pushing gives the same result.
fn import(m: ColumnMapping, o: ImportOptions, input: &[u8]) -> Outcome {
    let whole = import_chunked(m.clone(), o.clone(), input, input.len());
    let bytewise = import_chunked(m, o, input, 1);
    assert_eq!(whole, bytewise, "byte-at-a-time push differs from one push");
    whole
}

const HEADER: &str = "Phone,First,Last,Email,TZ,Consent,Source,Consent At,Consent Text,CRM Id";

fn err(line: u64, column: &str, reason_part: &str, errors: &[RowError]) {
    assert!(
        errors.iter().any(|e| e.line == line
            && e.column.as_deref() == Some(column)
            && e.reason.contains(reason_part)),
        "no error at line {line} column {column} containing {reason_part:?} in {errors:#?}"
    );
}

#[test]
fn bom_crlf_quoted_newlines_and_custom_columns() {
    let input = "\u{FEFF}Phone,First,Last,Email,TZ,Consent,Source,Consent At,Consent Text,CRM Id,Notes,Plan\r\n\
        (415) 555-2671,Ada,Lovelace,ada@example.com,,EXPRESS_WRITTEN,web form,2024-05-01T14:30:00Z,\"I agree, call me\r\nany time\",crm-1,\"line one\nline two\",gold\r\n\
        +44 20 7946 0958,Alan,Turing,,Europe/London,verbal,,2024-05-02,,crm-2, , \r\n";
    let (batch, summary) = import(mapping(), us_options(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 2,
            skipped: 0,
            failed: 0
        }
    );
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    let [a, b] = &batch.records[..] else {
        panic!("{:?}", batch.records)
    };

    assert_eq!(a.line, 2);
    assert_eq!(a.phone.as_str(), "+14155552671");
    assert_eq!(a.first_name.as_deref(), Some("Ada"));
    assert_eq!(a.email.as_deref(), Some("ada@example.com"));
    assert_eq!(a.consent_status, Some(ConsentStatus::ExpressWritten));
    assert_eq!(a.consent_source.as_deref(), Some("web form"));
    assert_eq!(a.consent_at.unwrap().to_string(), "2024-05-01T14:30:00Z");
    assert_eq!(
        a.consent_text.as_deref(),
        Some("I agree, call me\r\nany time")
    );
    assert_eq!(a.external_id.as_deref(), Some("crm-1"));
    let tz = a.timezone.as_ref().unwrap();
    assert_eq!(
        (tz.name.as_str(), tz.source),
        ("America/Los_Angeles", TimeZoneSource::Inferred)
    );
    assert_eq!(a.custom["Notes"], "line one\nline two");
    assert_eq!(a.custom["Plan"], "gold");
    assert_eq!(a.custom.len(), 2);

    // The quoted fields of row 2 span lines 2-4, so row 3 starts on line 5.
    assert_eq!(b.line, 5);
    assert_eq!(b.phone.as_str(), "+442079460958");
    let tz = b.timezone.as_ref().unwrap();
    assert_eq!(
        (tz.name.as_str(), tz.source),
        ("Europe/London", TimeZoneSource::Explicit)
    );
    assert_eq!(b.consent_status, Some(ConsentStatus::Verbal));
    assert!(matches!(b.consent_at, Some(ConsentAt::Date(_))));
    assert_eq!(b.email, None);
    assert_eq!(b.custom["Notes"], " ");
}

#[test]
fn missing_required_column_is_one_clear_error() {
    let input = "Mobile,First\n4155552671,Ada\n";
    let e = import(mapping(), us_options(), input.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        ImportError::MissingColumn {
            field: "phone",
            column: "Phone".into(),
            line: 1
        }
    );
    assert!(e.to_string().contains("\"Phone\""), "{e}");
    // The error sticks: further pushes report it again instead of parsing on.
    let mut imp = LeadCsvImporter::new(mapping(), us_options());
    assert!(imp.push(input.as_bytes()).is_err());
    assert!(imp.push(b"4155552672,Bob\n").is_err());
    assert!(imp.finish().is_err());
}

#[test]
fn a_semicolon_or_tab_separated_file_is_named_as_such() {
    for (input, d) in [
        ("Phone;First\n4155552671;Ada\n", ';'),
        ("Phone\tFirst\n4155552671\tAda\n", '\t'),
    ] {
        let e = import(mapping(), us_options(), input.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            ImportError::WrongDelimiter {
                delimiter: d,
                line: 1
            }
        );
        assert!(e.to_string().contains("comma-separated"), "{e}");
    }
}

#[test]
fn missing_optional_mapped_column_names_the_field() {
    let m = ColumnMapping {
        phone: "phone".into(),
        email: Some("E-mail".into()),
        ..Default::default()
    };
    let e = import(m, us_options(), b"PHONE\n4155552671\n").unwrap_err();
    assert_eq!(
        e,
        ImportError::MissingColumn {
            field: "email",
            column: "E-mail".into(),
            line: 1
        }
    );
}

#[test]
fn bad_numbers_are_reported_by_line_and_column_and_good_rows_kept() {
    let input = format!(
        "{HEADER}\n(415) 555-2671,A,,,,,,,,\n(099) 555-2671,B,,,,,,,,\nnot a phone,C,,,,,,,,\n,D,,,,,,,,\n+1 212 555 0199,E,,,,,,,,\n"
    );
    let (batch, summary) = import(mapping(), us_options(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 2,
            skipped: 0,
            failed: 3
        }
    );
    let lines: Vec<u64> = batch.records.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 6]);
    err(3, "Phone", "not a valid number", &batch.errors);
    err(4, "Phone", "not a phone number", &batch.errors);
    err(5, "Phone", "empty", &batch.errors);
    assert_eq!(batch.errors.len(), 3);
    for e in &batch.errors {
        assert!(!e.reason.contains("555"), "number echoed: {e:?}");
    }
}

#[test]
fn bad_consent_timezone_date_and_email_fail_the_row_with_every_reason() {
    let input = format!(
        "{HEADER}\n\
         4155552671,A,,bad-email,Mars/Olympus,maybe,,yesterday,,\n\
         4155552672,B,,,,REVOKED,,2024-02-30,,\n\
         4155552673,C,,,america/chicago,None,,2024-05-01T10:00:00-05:00,,\n"
    );
    let (batch, summary) = import(mapping(), us_options(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            skipped: 0,
            failed: 2
        }
    );
    err(2, "Email", "not an email", &batch.errors);
    err(
        2,
        "TZ",
        "unknown IANA time zone \"Mars/Olympus\"",
        &batch.errors,
    );
    err(
        2,
        "Consent",
        "unknown consent status \"maybe\"",
        &batch.errors,
    );
    err(2, "Consent At", "bad consent date", &batch.errors);
    err(3, "Consent At", "bad consent date", &batch.errors);
    assert_eq!(batch.errors.len(), 5);
    let c = &batch.records[0];
    assert_eq!(c.consent_status, Some(ConsentStatus::None));
    assert_eq!(
        c.timezone.as_ref().unwrap().name.as_str(),
        "America/Chicago"
    );
    assert_eq!(c.consent_at.unwrap().to_string(), "2024-05-01T15:00:00Z");
}

#[test]
fn duplicate_numbers_are_skipped_with_the_first_line() {
    let input = "Phone,Name\n+14155552671,a\n(415) 555-2671,b\n4155552672,\"c\nc2\"\n1-415-555-2671,d\n\"415 555 2672\",e\n";
    let m = ColumnMapping {
        phone: "Phone".into(),
        ..Default::default()
    };
    let (batch, summary) = import(m, us_options(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 2,
            skipped: 3,
            failed: 0
        }
    );
    assert_eq!(
        batch.skipped,
        vec![
            SkippedRow {
                line: 3,
                first_line: 2
            },
            SkippedRow {
                line: 6,
                first_line: 2
            },
            SkippedRow {
                line: 7,
                first_line: 4
            },
        ]
    );
    assert_eq!(batch.records[0].custom["Name"], "a");
}

#[test]
fn a_failed_row_does_not_claim_its_number() {
    let input = format!("{HEADER}\n4155552671,,,,,bogus,,,,\n4155552671,,,,,verbal,,,,\n");
    let (batch, summary) = import(mapping(), us_options(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            skipped: 0,
            failed: 1
        }
    );
    assert_eq!(batch.records[0].line, 3);
}

#[test]
fn wrong_field_count_blank_rows_and_invalid_utf8() {
    let mut input = b"Phone,Name\n4155552671\n\n,\n4155552672,ok\n4155552673,\xff\xfe\n".to_vec();
    input.extend_from_slice(b"4155552674,a,b\n");
    let m = ColumnMapping {
        phone: "Phone".into(),
        ..Default::default()
    };
    let (batch, summary) = import(m, us_options(), &input).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            skipped: 0,
            failed: 3
        }
    );
    assert_eq!(batch.records[0].line, 5);
    assert!(
        batch
            .errors
            .iter()
            .any(|e| e.line == 2 && e.column.is_none() && e.reason.contains("1 fields"))
    );
    err(6, "Name", "UTF-8", &batch.errors);
    assert!(
        batch
            .errors
            .iter()
            .any(|e| e.line == 7 && e.reason.contains("3 fields"))
    );
}

#[test]
fn header_names_match_case_insensitively_and_trimmed() {
    let m = ColumnMapping {
        phone: "phone number".into(),
        first_name: Some("NAME".into()),
        ..Default::default()
    };
    let (batch, _) = import(m, us_options(), b" Phone Number ,name,\n4155552671,Ada,x\n").unwrap();
    let r = &batch.records[0];
    assert_eq!(r.first_name.as_deref(), Some("Ada"));
    // An empty header name becomes column_N so its values are not lost.
    assert_eq!(r.custom["column_3"], "x");
}

#[test]
fn header_problems_are_fatal() {
    let m = || ColumnMapping {
        phone: "Phone".into(),
        ..Default::default()
    };
    assert_eq!(
        import(m(), us_options(), b"Phone,phone\n").unwrap_err(),
        ImportError::DuplicateColumn {
            column: "phone".into(),
            line: 1
        }
    );
    assert_eq!(
        import(m(), us_options(), b"").unwrap_err(),
        ImportError::Empty
    );
    assert_eq!(
        import(m(), us_options(), b"\xEF\xBB\xBF\r\n\r\n").unwrap_err(),
        ImportError::Empty
    );
    let (batch, summary) = import(m(), us_options(), b"Phone\r\n").unwrap();
    assert!(batch.records.is_empty() && summary == ImportSummary::default());
    let bad = ColumnMapping {
        phone: " ".into(),
        ..Default::default()
    };
    assert!(matches!(
        import(bad, us_options(), b"Phone\n").unwrap_err(),
        ImportError::InvalidMapping(_)
    ));
}

#[test]
fn limits_give_clear_errors_without_buffering() {
    let small = ImportOptions {
        max_field_bytes: 32,
        max_columns: 3,
        max_rows: 3,
        ..us_options()
    };
    let m = ColumnMapping {
        phone: "Phone".into(),
        ..Default::default()
    };
    let big = "x".repeat(10_000);
    let input = format!("Phone,Note\n4155552671,{big}\n4155552672,a,b,c,d\n4155552673,ok\n");
    let (batch, summary) = import(m.clone(), small.clone(), input.as_bytes()).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            skipped: 0,
            failed: 2
        }
    );
    err(2, "Note", "longer than 32 bytes", &batch.errors);
    assert!(
        batch
            .errors
            .iter()
            .any(|e| e.line == 3 && e.reason.contains("more than 3 fields"))
    );

    let many_rows = "Phone\n4155552671\n4155552672\n4155552673\n4155552674\n4155552675\n";
    assert_eq!(
        import(m.clone(), small.clone(), many_rows.as_bytes()).unwrap_err(),
        ImportError::TooManyRows { max: 3, line: 5 }
    );
    assert_eq!(
        import(m.clone(), small.clone(), b"Phone,a,b,c\n").unwrap_err(),
        ImportError::TooManyColumns { max: 3 }
    );
    let long_header = format!("Phone,{big}\n");
    assert_eq!(
        import(m, small, long_header.as_bytes()).unwrap_err(),
        ImportError::HeaderFieldTooLarge { index: 2, max: 32 }
    );
}

#[test]
fn numbers_without_country_code_need_a_default_region() {
    let m = ColumnMapping {
        phone: "Phone".into(),
        ..Default::default()
    };
    let (batch, summary) = import(
        m,
        ImportOptions::default(),
        b"Phone\n4155552671\n+14155552672\n",
    )
    .unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: 1,
            skipped: 0,
            failed: 1
        }
    );
    err(2, "Phone", "no country code", &batch.errors);
}

#[test]
fn ambiguous_numbers_get_no_timezone() {
    let m = ColumnMapping {
        phone: "Phone".into(),
        timezone: Some("TZ".into()),
        ..Default::default()
    };
    let (batch, _) = import(
        m,
        us_options(),
        b"Phone,TZ\n2085551234,\n2085551235,America/Boise\n",
    )
    .unwrap();
    assert_eq!(batch.records[0].timezone, None);
    assert_eq!(
        batch.records[1].timezone.as_ref().unwrap().source,
        TimeZoneSource::Explicit
    );
}

#[test]
fn past_the_tracked_numbers_a_repeat_is_left_to_the_store() {
    let o = ImportOptions {
        max_tracked_numbers: 2,
        ..us_options()
    };
    let rows = [
        "4155552671", // line 2: tracked
        "4155552672", // line 3: tracked
        "4155552673", // line 4: not tracked (the index is full)
        "4155552671", // line 5: a repeat of a tracked number: skipped here
        "4155552673", // line 6: a repeat of an untracked one: passed on to the store
    ];
    let csv: String = std::iter::once(HEADER.to_owned())
        .chain(
            rows.iter()
                .map(|p| format!("{p},Ada,,,,verbal,,2024-05-01,,")),
        )
        .collect::<Vec<_>>()
        .join("\n");
    let (batch, summary) = import(mapping(), o, csv.as_bytes()).unwrap();
    assert_eq!(
        batch.skipped,
        vec![SkippedRow {
            line: 5,
            first_line: 2
        }]
    );
    let lines: Vec<u64> = batch.records.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 6]);
    assert_eq!((summary.imported, summary.skipped), (4, 1));
}

#[test]
fn mapping_json_rejects_unknown_fields_and_requires_phone() {
    assert!(serde_json::from_str::<ColumnMapping>(r#"{"phone":"P","nickname":"N"}"#).is_err());
    assert!(serde_json::from_str::<ColumnMapping>(r#"{"email":"E"}"#).is_err());
    let o: ImportOptions =
        serde_json::from_str(r#"{"default_region":"gb","max_rows":10}"#).unwrap();
    assert_eq!(o.default_region.unwrap().as_str(), "GB");
    assert_eq!(o.max_columns, ImportOptions::default().max_columns);
}

#[test]
fn records_serialize_for_the_api() {
    let (batch, _) = import(
        mapping(),
        us_options(),
        format!("{HEADER}\n4155552671,Ada,,,,verbal,,2024-05-01,,\n").as_bytes(),
    )
    .unwrap();
    let v = serde_json::to_value(&batch.records[0]).unwrap();
    assert_eq!(v["phone"], "+14155552671");
    assert_eq!(v["consent_status"], "verbal");
    assert_eq!(v["consent_at"], "2024-05-01");
    assert_eq!(v["timezone"]["name"], "America/Los_Angeles");
    assert_eq!(v["timezone"]["source"], "inferred");
}

/// A file of `n` distinct valid US numbers across single-zone and ambiguous area codes.
fn big_file(n: usize) -> String {
    let areas = [212, 415, 312, 303, 208, 617];
    let mut s = String::from(HEADER);
    s.push_str(",Notes\r\n");
    for i in 0..n {
        let area = areas[i % areas.len()];
        let sub = 2_000_000 + i / areas.len();
        s.push_str(&format!(
            "({area}) {}-{:04},First{i},Last{i},user{i}@example.com,,express_written,web,2024-05-01,\"I agree,\nthanks\",id-{i},note {i}\r\n",
            sub / 10_000,
            sub % 10_000
        ));
    }
    s
}

#[test]
fn a_100k_row_file_imports_every_row() {
    let n = 100_000;
    let input = big_file(n);
    let (batch, summary) =
        import_chunked(mapping(), us_options(), input.as_bytes(), 64 * 1024).unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            imported: n as u64,
            skipped: 0,
            failed: 0
        }
    );
    assert_eq!(batch.records.len(), n);
    // Every row spans two lines (the quoted consent text).
    assert_eq!(batch.records[n - 1].line, 2 + 2 * (n as u64 - 1));
    let inferred = batch
        .records
        .iter()
        .filter(|r| r.timezone.is_some())
        .count();
    assert_eq!(
        inferred,
        n - n / 6,
        "area code 208 spans zones, the rest infer"
    );
}

/// Random bytes from CSV-significant characters, in random chunkings, with small limits: the
/// importer never panics and the result never depends on where the chunks fall.
#[test]
fn random_inputs_never_panic_and_ignore_chunking() {
    const ALPHABET: &[u8] = b",,\"\"\r\n\n\naZ1+4 5\xEF\xBB\xBF\xFF";
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let options = ImportOptions {
        max_field_bytes: 8,
        max_columns: 4,
        max_rows: 20,
        ..us_options()
    };
    let m = ColumnMapping {
        phone: "a".into(),
        ..Default::default()
    };
    for _ in 0..300 {
        let len = (next() % 120) as usize;
        let mut input = b"a,Z\n".to_vec();
        input.extend((0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
        let whole = import_chunked(m.clone(), options.clone(), &input, input.len());
        let chunk = 1 + (next() % 7) as usize;
        let pieces = import_chunked(m.clone(), options.clone(), &input, chunk);
        assert_eq!(whole, pieces, "input {input:?} chunk {chunk}");
        if let Ok((batch, summary)) = whole {
            let rows = summary.imported + summary.skipped + summary.failed;
            assert_eq!(summary.imported as usize, batch.records.len());
            assert_eq!(summary.skipped as usize, batch.skipped.len());
            assert!(rows <= 20);
            let lines = input.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            assert!(
                batch.errors.iter().all(|e| e.line >= 2 && e.line <= lines),
                "{batch:?}"
            );
        }
    }
}
