//! GGML block quantization, bit-for-bit with ggml's reference quantizers
//! (`quantize_row_q8_0_ref`, `quantize_row_q5_1_ref`, `quantize_row_q4_0_ref` in
//! `ggml-quants.c`),
//! which are what whisper.cpp's `quantize` tool runs (`ggml_quantize_chunk`
//! without an importance matrix).
//!
//! The arithmetic is done in f32 in the same order as the C code, and f32→f16
//! uses round-to-nearest-even like `GGML_FP32_TO_FP16`.

use half::f16;

/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block: f16 `d` + 32 × i8.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;
/// Elements per Q5_1 block.
pub const QK5_1: usize = 32;
/// Bytes per Q5_1 block: f16 `d`, f16 `m`, u32 `qh`, 16 bytes of nibbles.
pub const Q5_1_BLOCK_BYTES: usize = 2 + 2 + 4 + QK5_1 / 2;

/// Elements per Q4_0 block.
pub const QK4_0: usize = 32;
/// Bytes per Q4_0 block: f16 `d` + 16 bytes of nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 2 + QK4_0 / 2;

/// Appends the Q4_0 encoding of `x` to `out` (ggml `quantize_row_q4_0_ref`): per block,
/// d = (the value of largest magnitude) / -8, codes = min(15, (int8)(x/d + 8.5)), the first
/// half of the block in the low nibbles. Q4_0 is the type ggml's x86 CPU backend repacks into
/// its fast AVX2 GEMM layout at load time (q8_0 and q5_1 have no such kernels).
pub fn quantize_q4_0(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK4_0, 0);
    out.reserve(x.len() / QK4_0 * Q4_0_BLOCK_BYTES);
    for block in x.chunks_exact(QK4_0) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in block {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        for j in 0..QK4_0 / 2 {
            let x0 = block[j] * id;
            let x1 = block[QK4_0 / 2 + j] * id;
            // MIN(15, (int8_t)(x + 8.5f)): truncation toward zero, then the cap.
            let xi0 = ((x0 + 8.5) as i8).min(15) as u8;
            let xi1 = ((x1 + 8.5) as i8).min(15) as u8;
            out.push(xi0 | (xi1 << 4));
        }
    }
}

/// Decodes Q4_0 blocks (ggml `dequantize_row_q4_0`).
pub fn dequantize_q4_0(blocks: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; blocks.len() / Q4_0_BLOCK_BYTES * QK4_0];
    for (b, y) in blocks
        .chunks_exact(Q4_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK4_0))
    {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, &q) in b[2..].iter().enumerate() {
            y[j] = (f32::from(q & 0x0F) - 8.0) * d;
            y[j + QK4_0 / 2] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
    out
}

/// Appends the Q8_0 encoding of `x` to `out`. `x.len()` must be a multiple of
/// [`QK8_0`] (the caller checks; a partial tail block is ignored).
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK8_0, 0);
    out.reserve(x.len() / QK8_0 * Q8_0_BLOCK_BYTES);
    for block in x.chunks_exact(QK8_0) {
        let mut amax = 0.0f32;
        for &v in block {
            // MAX(amax, fabsf(v)) = (amax > |v| ? amax : |v|)
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / ((1 << 7) - 1) as f32;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        for &v in block {
            // roundf: half away from zero, as f32::round. |v*id| <= 127 (+ulp).
            out.push((v * id).round() as i8 as u8);
        }
    }
}

/// Appends the Q5_1 encoding of `x` to `out`. `x.len()` must be a multiple of
/// [`QK5_1`] (the caller checks; a partial tail block is ignored).
pub fn quantize_q5_1(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK5_1, 0);
    out.reserve(x.len() / QK5_1 * Q5_1_BLOCK_BYTES);
    for block in x.chunks_exact(QK5_1) {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in block {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / ((1 << 5) - 1) as f32;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };

        let mut qh: u32 = 0;
        let mut qs = [0u8; QK5_1 / 2];
        for j in 0..QK5_1 / 2 {
            let x0 = (block[j] - min) * id;
            let x1 = (block[QK5_1 / 2 + j] - min) * id;
            // (uint8_t)(x + 0.5f): truncation; x >= 0 here.
            let xi0 = (x0 + 0.5) as u8;
            let xi1 = (x1 + 0.5) as u8;
            qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= u32::from((xi0 & 0x10) >> 4) << j;
            qh |= u32::from((xi1 & 0x10) >> 4) << (j + QK5_1 / 2);
        }
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        out.extend_from_slice(&qh.to_le_bytes());
        out.extend_from_slice(&qs);
    }
}

/// Decodes Q8_0 blocks (ggml `dequantize_row_q8_0`).
pub fn dequantize_q8_0(blocks: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(blocks.len() / Q8_0_BLOCK_BYTES * QK8_0);
    for b in blocks.chunks_exact(Q8_0_BLOCK_BYTES) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        out.extend(b[2..].iter().map(|&q| f32::from(q as i8) * d));
    }
    out
}

/// Decodes Q5_1 blocks (ggml `dequantize_row_q5_1`).
pub fn dequantize_q5_1(blocks: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; blocks.len() / Q5_1_BLOCK_BYTES * QK5_1];
    for (b, y) in blocks
        .chunks_exact(Q5_1_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK5_1))
    {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..];
        for j in 0..QK5_1 / 2 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = (qs[j] & 0x0F) | xh0;
            let x1 = (qs[j] >> 4) | xh1;
            y[j] = f32::from(x0) * d + m;
            y[j + QK5_1 / 2] = f32::from(x1) * d + m;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-scale, scale) (no rand dependency).
    fn lcg_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn q4_0_hand_computed_block() {
        // Largest magnitude -16 → d = 2, id = 0.5: codes are (int)(x/2 + 8.5), capped at 15.
        let mut x = [0.0f32; 32];
        x[0] = -16.0; // -8 + 8.5 = 0.5 → 0
        x[1] = 14.0; // 7 + 8.5 = 15.5 → 15
        x[2] = 1.0; // 0.5 + 8.5 = 9
        x[16] = 15.9; // 7.95 + 8.5 = 16.45 → 16, capped to 15
        x[17] = -3.0; // -1.5 + 8.5 = 7
        let mut out = Vec::new();
        quantize_q4_0(&x, &mut out);
        assert_eq!(out.len(), Q4_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), 2.0);
        assert_eq!(
            out[2],
            15 << 4,
            "x[0] = 0 in the low nibble, x[16] = 15 in the high"
        );
        assert_eq!(out[3], 15 | (7 << 4));
        assert_eq!(out[4], 9 | (8 << 4), "zeros encode as 8");
        let back = dequantize_q4_0(&out);
        assert_eq!(back[0], -16.0);
        assert_eq!(back[1], 14.0);
        assert_eq!(back[17], -2.0);
        // All zeros: d = 0, every code 8, decodes to zeros.
        let mut z = Vec::new();
        quantize_q4_0(&[0.0; 32], &mut z);
        assert!(z[2..].iter().all(|&b| b == 0x88));
        assert!(dequantize_q4_0(&z).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn q4_0_error_is_within_half_a_step() {
        let x = lcg_values(32 * 64, 7, 3.0);
        let mut out = Vec::new();
        quantize_q4_0(&x, &mut out);
        let back = dequantize_q4_0(&out);
        for (block, (xs, ys)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
            let d = f16::from_le_bytes([out[block * 18], out[block * 18 + 1]])
                .to_f32()
                .abs();
            for (a, b) in xs.iter().zip(ys) {
                // Half a step from rounding, plus the cap at +7 on the far side of the scale.
                assert!((a - b).abs() <= d * 1.0 + 1e-3, "{a} vs {b} (d = {d})");
            }
        }
    }

    #[test]
    fn q8_0_hand_computed_block() {
        // amax = 127 → d = 1, id = 1: the codes are roundf(x) exactly.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = -127.0;
        x[2] = 0.4;
        x[3] = 0.5; // roundf rounds half away from zero: 1
        x[4] = -0.5; // -1
        x[5] = 2.5; // 3 (not banker's 2)
        x[6] = -2.5; // -3
        x[7] = 63.49;
        x[31] = -1.0;
        let mut out = Vec::new();
        quantize_q8_0(&x, &mut out);
        let mut expected = vec![0x00, 0x3C]; // f16(1.0)
        let mut qs = [0i8; 32];
        qs[..8].copy_from_slice(&[127, -127, 0, 1, -1, 3, -3, 63]);
        qs[31] = -1;
        expected.extend(qs.iter().map(|&q| q as u8));
        assert_eq!(out, expected);
    }

    #[test]
    fn q8_0_zero_block() {
        let mut out = Vec::new();
        quantize_q8_0(&[0.0; 32], &mut out);
        assert_eq!(out, vec![0u8; 34]);
    }

    #[test]
    fn q5_1_hand_computed_blocks() {
        // x = j: min 0, max 31 → d = 1, m = 0, codes = j.
        let x: Vec<f32> = (0..32).map(|j| j as f32).collect();
        let mut out = Vec::new();
        quantize_q5_1(&x, &mut out);
        let mut expected = vec![0x00, 0x3C, 0x00, 0x00]; // d = 1.0, m = 0.0
        expected.extend_from_slice(&0xFFFF_0000u32.to_le_bytes()); // 5th bit set for 16..31
        expected.extend((0..16u8).map(|j| j | (j << 4)));
        assert_eq!(out, expected);

        // x = j/2 - 4: min -4, max 11.5 → d = 0.5, m = -4, codes = j.
        let x: Vec<f32> = (0..32).map(|j| j as f32 * 0.5 - 4.0).collect();
        out.clear();
        quantize_q5_1(&x, &mut out);
        expected[..4].copy_from_slice(&[0x00, 0x38, 0x00, 0xC4]); // f16(0.5), f16(-4.0)
        assert_eq!(out, expected);
        assert_eq!(dequantize_q5_1(&out), x);
    }

    #[test]
    fn q5_1_constant_block() {
        let mut out = Vec::new();
        quantize_q5_1(&[3.0; 32], &mut out);
        // d = 0, m = 3.0 (0x4200), all codes 0.
        let mut expected = vec![0x00, 0x00, 0x00, 0x42, 0, 0, 0, 0];
        expected.extend([0u8; 16]);
        assert_eq!(out, expected);
        assert_eq!(dequantize_q5_1(&out), vec![3.0; 32]);
    }

    #[test]
    fn round_trip_error_bounds() {
        for (seed, scale) in [(1u64, 1.0f32), (2, 0.02), (3, 300.0)] {
            let x = lcg_values(32 * 64, seed, scale);

            let mut q8 = Vec::new();
            quantize_q8_0(&x, &mut q8);
            assert_eq!(q8.len(), 64 * Q8_0_BLOCK_BYTES);
            let y = dequantize_q8_0(&q8);
            for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
                let amax = bx.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                // half a step, plus the f16 rounding of d scaled by up to 127 codes
                let bound = 0.5 * d + 127.0 * d * 2f32.powi(-11) + f32::EPSILON * amax;
                for (a, b) in bx.iter().zip(by) {
                    assert!((a - b).abs() <= bound, "q8_0 {a} vs {b} (bound {bound})");
                }
            }

            let mut q5 = Vec::new();
            quantize_q5_1(&x, &mut q5);
            assert_eq!(q5.len(), 64 * Q5_1_BLOCK_BYTES);
            let y = dequantize_q5_1(&q5);
            for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
                let min = bx.iter().fold(f32::MAX, |a, &v| a.min(v));
                let max = bx.iter().fold(-f32::MAX, |a, &v| a.max(v));
                let d = (max - min) / 31.0;
                let bound = 0.5 * d
                    + 31.0 * d * 2f32.powi(-11)
                    + min.abs() * 2f32.powi(-11)
                    + 4.0 * f32::EPSILON * max.abs().max(min.abs());
                for (a, b) in bx.iter().zip(by) {
                    assert!((a - b).abs() <= bound, "q5_1 {a} vs {b} (bound {bound})");
                }
            }
        }
    }
}
