//! At-rest encryption throughput: a 1 MB object through `EncryptingWriter` and back through
//! `DecryptingReader` (AES-256-GCM, 64 KiB chunks, ring). Run: `cargo bench --bench at_rest`;
//! criterion prints MB/s (Throughput::Bytes).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::store::at_rest::{DecryptingReader, EncryptingWriter, MasterKeyRing};
use std::hint::black_box;
use std::io::{Read, Write};

const OBJECT: usize = 1024 * 1024;
const RING: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn at_rest(c: &mut Criterion) {
    let ring = MasterKeyRing::parse(RING, "bench").unwrap();
    let plain: Vec<u8> = (0..OBJECT).map(|i| (i * 7) as u8).collect();
    let mut group = c.benchmark_group("at_rest_1MB");
    group.throughput(Throughput::Bytes(OBJECT as u64));
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            let mut w = EncryptingWriter::new(Vec::with_capacity(OBJECT + 4096), &ring).unwrap();
            // The recorder hands over about one second (up to 64 KB) at a time.
            for piece in plain.chunks(32 * 1024) {
                w.write_all(piece).unwrap();
            }
            black_box(w.finish().unwrap())
        })
    });
    let mut w = EncryptingWriter::new(Vec::new(), &ring).unwrap();
    w.write_all(&plain).unwrap();
    let object = w.finish().unwrap();
    let mut out = Vec::with_capacity(OBJECT);
    group.bench_function("decrypt", |b| {
        b.iter(|| {
            out.clear();
            DecryptingReader::new(&object[..], &ring)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, at_rest);
criterion_main!(benches);
