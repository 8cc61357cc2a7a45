//! Codec micro-benchmarks: G.711 µ-law and A-law encode and decode of one 20 ms frame at
//! 8 kHz (160 samples). Run: `cargo bench --bench codec`; criterion prints frames/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::codec::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use std::hint::black_box;

/// One 20 ms frame of speech-like signal: a 440 Hz tone plus a little deterministic noise.
fn frame() -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    (0..160)
        .map(|i| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let tone = (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0;
            (tone as i32 + ((seed >> 16) as i32 & 0x3FF) - 512) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let pcm = frame();
    let ulaw: Vec<u8> = pcm.iter().copied().map(linear_to_ulaw).collect();
    let alaw: Vec<u8> = pcm.iter().copied().map(linear_to_alaw).collect();
    let mut bytes = [0u8; 160];
    let mut samples = [0i16; 160];
    let mut g = c.benchmark_group("g711_frame_20ms");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ulaw_encode", |b| {
        b.iter(|| {
            for (o, s) in bytes.iter_mut().zip(black_box(&pcm)) {
                *o = linear_to_ulaw(*s);
            }
        })
    });
    g.bench_function("ulaw_decode", |b| {
        b.iter(|| {
            for (o, u) in samples.iter_mut().zip(black_box(&ulaw)) {
                *o = ulaw_to_linear(*u);
            }
        })
    });
    g.bench_function("alaw_encode", |b| {
        b.iter(|| {
            for (o, s) in bytes.iter_mut().zip(black_box(&pcm)) {
                *o = linear_to_alaw(*s);
            }
        })
    });
    g.bench_function("alaw_decode", |b| {
        b.iter(|| {
            for (o, a) in samples.iter_mut().zip(black_box(&alaw)) {
                *o = alaw_to_linear(*a);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, g711);
criterion_main!(benches);
