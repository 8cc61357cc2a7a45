//! G.711 µ-law and A-law (ITU-T G.711), computed per sample with the classic segment
//! arithmetic (the same results as the ITU G.191 reference `g711.c`).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Encodes one 16-bit linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    // s is in 132..=32767, so floor(log2(s)) - 7 is the segment 0..=7.
    let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
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

/// Encodes one 16-bit linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let (mask, mut s) = if sample >= 0 {
        (0xd5u8, sample as i32)
    } else {
        (0x55u8, -(sample as i32) - 1)
    };
    s = s.min(0x7fff);
    let byte = if s < 256 {
        (s >> 4) as u8
    } else {
        let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7;
        ((exponent << 4) | ((s >> (exponent + 3)) & 0x0f)) as u8
    };
    byte ^ mask
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(-1), 0x7f);
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

    #[test]
    fn decode_encode_is_identity_on_codewords() {
        for b in 0..=255u8 {
            // µ-law 0x7f and 0xff both decode to 0; the encoder picks 0xff for +0.
            if b != 0x7f {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }
}
