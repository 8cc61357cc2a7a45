//! G.711 µ-law and A-law (ITU-T G.711) by table: the tables are built at compile time with
//! the segment arithmetic of the reference `g711.c`, and a test checks all 65,536 encodings
//! and 256 decodings per law against digests of the reference.

const BIAS: i32 = 0x84;

/// Upper ends of the eight µ-law segments on the 14-bit magnitude (G.191 `g711.c`).
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of the eight A-law segments on the 13-bit magnitude.
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(v: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if v <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// The reference µ-law encoding of a 14-bit sample (the 16-bit sample floored by 2 bits,
/// which decides the rounding of negative values).
const fn ulaw_from_14bit(mut v: i32) -> u8 {
    let mask: i32 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > 8159 {
        v = 8159;
    }
    v += BIAS >> 2;
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
    (uval ^ mask) as u8
}

/// The reference A-law encoding of a 13-bit sample.
const fn alaw_from_13bit(mut v: i32) -> u8 {
    let mask: i32 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let low = if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    ((((seg as i32) << 4) | low) ^ mask) as u8
}

const fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// A table built at compile time: entry `i` is `$value` evaluated with that `i`.
macro_rules! table {
    ($ty:ty, $len:expr, |$i:ident| $value:expr) => {{
        let mut t: [$ty; $len] = [0; $len];
        let mut $i = 0;
        while $i < $len {
            t[$i] = $value;
            $i += 1;
        }
        t
    }};
}

/// µ-law codes of every 14-bit sample, index = sample + 8192.
static ULAW_ENCODE: [u8; 16384] = table!(u8, 16384, |i| ulaw_from_14bit(i as i32 - 8192));
/// A-law codes of every 13-bit sample, index = sample + 4096.
static ALAW_ENCODE: [u8; 8192] = table!(u8, 8192, |i| alaw_from_13bit(i as i32 - 4096));
static ULAW_DECODE: [i16; 256] = table!(i16, 256, |i| ulaw_decode(i as u8));
static ALAW_DECODE: [i16; 256] = table!(i16, 256, |i| alaw_decode(i as u8));

/// Encodes one 16-bit linear sample to µ-law (table lookup).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // `>> 2` maps i16 onto -8192..=8191, so the index is always in range.
    ULAW_ENCODE[((i32::from(sample) >> 2) + 8192) as usize]
}

/// Decodes one µ-law byte to a 16-bit linear sample (table lookup).
#[inline]
pub fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW_DECODE[byte as usize]
}

/// Encodes one 16-bit linear sample to A-law (table lookup).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // `>> 3` maps i16 onto -4096..=4095.
    ALAW_ENCODE[((i32::from(sample) >> 3) + 4096) as usize]
}

/// Decodes one A-law byte to a 16-bit linear sample (table lookup).
#[inline]
pub fn alaw_to_linear(byte: u8) -> i16 {
    ALAW_DECODE[byte as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        // The reference floors -1 to -1 in 14 bits, so it lands one step from zero.
        assert_eq!(linear_to_ulaw(-1), 0x7e);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xff), 0);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    /// CRC-32 (IEEE), enough to compare whole tables against reference digests.
    fn crc32(bytes: impl IntoIterator<Item = u8>) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
            }
        }
        !crc
    }

    /// Digests of the reference tables: every 16-bit input -32768..=32767 encoded, and every
    /// codeword decoded (little-endian i16), as produced by the CCITT/Sun `g711.c` that
    /// CPython's `audioop` implements (`audioop.lin2ulaw(all, 2)` etc., CRC-32 by `zlib`).
    #[test]
    fn whole_tables_match_the_reference_implementation() {
        let all = || i16::MIN..=i16::MAX;
        assert_eq!(
            crc32(all().map(linear_to_ulaw)),
            0x3b7c_3a3e,
            "µ-law encode"
        );
        assert_eq!(
            crc32(all().map(linear_to_alaw)),
            0x9133_796e,
            "A-law encode"
        );
        let dec = |f: fn(u8) -> i16| crc32((0..=255u8).flat_map(move |b| f(b).to_le_bytes()));
        assert_eq!(dec(ulaw_to_linear), 0x0c84_7a9f, "µ-law decode");
        assert_eq!(dec(alaw_to_linear), 0x9d76_4657, "A-law decode");
    }

    #[test]
    fn decode_encode_is_identity_on_codewords() {
        for b in 0..=255u8 {
            // µ-law 0x7f and 0xff both decode to 0; the encoder picks 0xff for 0.
            if b != 0x7f {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }
}
