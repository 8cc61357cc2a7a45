//! Lead CSV import throughput: rows per second on a 100k-row file pushed in 64 KiB chunks.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::leads::csv_import::{ColumnMapping, LeadCsvImporter};
use leadscaller::leads::import::ImportOptions;
use leadscaller::leads::phone::normalize_phone;

const ROWS: usize = 100_000;

fn file() -> Vec<u8> {
    let areas = [212, 415, 312, 303, 208, 617];
    let mut s = String::from(
        "Phone,First,Last,Email,TZ,Consent,Source,Consent At,Consent Text,CRM Id,Notes\r\n",
    );
    for i in 0..ROWS {
        let area = areas[i % areas.len()];
        let sub = 2_000_000 + i / areas.len();
        s.push_str(&format!(
            "({area}) {}-{:04},First{i},Last{i},user{i}@example.com,,express_written,web,\
             2024-05-01T10:00:00Z,\"I agree,\nthanks\",id-{i},note {i}\r\n",
            sub / 10_000,
            sub % 10_000
        ));
    }
    s.into_bytes()
}

fn mapping() -> ColumnMapping {
    serde_json::from_str(
        r#"{"phone": "Phone", "first_name": "First", "last_name": "Last", "email": "Email",
            "timezone": "TZ", "consent_status": "Consent", "consent_source": "Source",
            "consent_at": "Consent At", "consent_text": "Consent Text", "external_id": "CRM Id"}"#,
    )
    .expect("mapping")
}

fn import(bytes: &[u8]) -> u64 {
    let options = ImportOptions {
        default_region: Some("US".parse().expect("region")),
        ..ImportOptions::default()
    };
    let mut imp = LeadCsvImporter::new(mapping(), options);
    let mut n = 0;
    for chunk in bytes.chunks(64 * 1024) {
        n += imp.push(chunk).expect("push").records.len() as u64;
    }
    n += imp.finish().expect("finish").records.len() as u64;
    assert_eq!(n, ROWS as u64);
    n
}

fn bench(c: &mut Criterion) {
    let bytes = file();
    let mut g = c.benchmark_group("leads_csv");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("import_100k_rows", |b| b.iter(|| import(&bytes)));
    // The phone parse alone, to see its share of the import.
    let phones: Vec<String> = (0..ROWS)
        .map(|i| format!("(415) {}-{:04}", 200 + i / 10_000, i % 10_000))
        .collect();
    let us = Some("US".parse().expect("region"));
    g.bench_function("normalize_phone_100k", |b| {
        b.iter(|| {
            phones
                .iter()
                .filter(|p| normalize_phone(p, us).is_ok())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
