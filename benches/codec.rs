//! Codec micro-benchmarks, one 20 ms frame per iteration: G.711 µ-law and A-law encode and
//! decode at 8 kHz (160 samples), Opus encode and decode at 16 kHz (320 samples), and the
//! resampler between the internal rates. Run: `cargo bench --bench codec`; criterion prints
//! frames/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::codec::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use leadscaller::codec::resample::Resampler;
use leadscaller::codec::{CodecSpec, Decoder, Encoder};
use std::hint::black_box;

/// `n` samples of speech-like signal at `rate`: a 440 Hz tone plus a little deterministic
/// noise.
fn signal(rate: u32, n: usize) -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    (0..n)
        .map(|i| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let tone =
                (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(rate)).sin() * 8000.0;
            (tone as i32 + ((seed >> 16) as i32 & 0x3FF) - 512) as i16
        })
        .collect()
}

/// One 20 ms frame at 8 kHz.
fn frame() -> Vec<i16> {
    signal(8000, 160)
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

fn opus(c: &mut Criterion) {
    let spec = CodecSpec::from_sdp("opus", 111).expect("opus spec");
    let n = spec.frame_samples();
    // One second of signal: the encoder sees a continuing stream, as in a call.
    let pcm = signal(spec.pcm_rate, 50 * n);
    let frames: Vec<&[i16]> = pcm.chunks(n).collect();
    let mut enc = Encoder::new(spec).expect("opus encoder");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p).expect("encode");
            p
        })
        .collect();
    let mut g = c.benchmark_group("opus_frame_20ms_16k");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1500);
    let mut i = 0;
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            enc.encode(black_box(frames[i]), &mut out).expect("encode");
        })
    });
    let mut dec = Decoder::new(spec).expect("opus decoder");
    let mut pcm_out = Vec::with_capacity(n);
    g.bench_function("decode", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            dec.decode(black_box(&packets[i]), &mut pcm_out)
                .expect("decode");
        })
    });
    g.bench_function("conceal", |b| b.iter(|| dec.conceal(n, &mut pcm_out)));
    g.finish();
}

fn resample(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_frame_20ms");
    g.throughput(Throughput::Elements(1));
    for (from, to) in [(8000, 16000), (16000, 8000), (24000, 8000), (48000, 16000)] {
        let mut r = Resampler::new(from, to).expect("resampler");
        let input = signal(from, r.input_frame());
        let mut out = Vec::with_capacity(r.output_frame());
        g.bench_function(format!("{}k_to_{}k", from / 1000, to / 1000), |b| {
            b.iter(|| r.process(black_box(&input), &mut out).expect("resample"))
        });
    }
    g.finish();
}

criterion_group!(benches, g711, opus, resample);
criterion_main!(benches);
