//! Files built by hand for tests, of this crate and of the services that run it: a PDF with a
//! correct cross-reference table, and hostile input (a zlib stream that inflates to any size,
//! written directly so a gigabyte costs milliseconds). Nothing here is used in production.

/// A PDF of `objects` (numbered from 1) with the catalog at `root`, a correct cross-reference
/// table and trailer.
pub fn pdf(objects: &[Vec<u8>], root: usize, info: Option<usize>) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let info = info.map(|i| format!(" /Info {i} 0 R")).unwrap_or_default();
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root {root} 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// A stream object: `<< /Length n extra >> stream … endstream`.
pub fn stream(extra: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< /Length {} {extra} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A one-page PDF whose only content stream is `zlib` (FlateDecode).
pub fn pdf_with_compressed_page(zlib: &[u8]) -> Vec<u8> {
    pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
            stream("/Filter /FlateDecode", zlib),
        ],
        1,
        None,
    )
}

/// A zlib stream that inflates to `pattern` repeated, `pattern.len() + 258 * copies` bytes in
/// all, written directly (nothing is compressed, so a gigabyte costs milliseconds): one
/// fixed-Huffman block of the pattern as literals followed by `copies` back-references of the
/// longest length (258) at distance `pattern.len()`. About 13 bits per 258 bytes.
pub fn zlib_repeat(pattern: &[u8], copies: usize) -> Vec<u8> {
    assert!((1..=32_768).contains(&pattern.len()));
    let mut bits = BitWriter::default();
    bits.out.extend_from_slice(&[0x78, 0x01]);
    bits.write(1, 1); // last block
    bits.write(1, 2); // fixed Huffman codes
    for &byte in pattern {
        if byte < 144 {
            bits.write_code(0x30 + u32::from(byte), 8);
        } else {
            bits.write_code(0x190 + u32::from(byte) - 144, 9);
        }
    }
    let (dist_code, extra_bits, extra) = distance_code(pattern.len());
    for _ in 0..copies {
        bits.write_code(0xc5, 8); // length code 285: 258 bytes
        bits.write_code(dist_code, 5);
        bits.write(extra, extra_bits);
    }
    bits.write_code(0, 7); // end of block
    let mut out = bits.finish();
    let total = pattern.len() as u128 + 258 * copies as u128;
    out.extend_from_slice(&adler32_of_repeat(pattern, total).to_be_bytes());
    out
}

fn distance_code(distance: usize) -> (u32, u32, u32) {
    const BASE: [usize; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
        6145, 8193, 12289, 16385, 24577,
    ];
    let code = BASE.iter().rposition(|&b| b <= distance).unwrap_or(0);
    let extra_bits = if code < 4 { 0 } else { (code as u32 - 2) / 2 };
    (code as u32, extra_bits, (distance - BASE[code]) as u32)
}

/// Adler-32 of `pattern` repeated to `total` bytes, in closed form.
fn adler32_of_repeat(pattern: &[u8], total: u128) -> u32 {
    const MOD: u128 = 65_521;
    let p = pattern.len() as u128;
    let (mut a, mut b) = (1u128, total % MOD);
    for (j, &byte) in pattern.iter().enumerate() {
        let j = j as u128;
        if j >= total {
            break;
        }
        let count = (total - j).div_ceil(p);
        let byte = u128::from(byte);
        a = (a + count * byte) % MOD;
        // Σ over positions i of (total - i): count·total − Σ i, Σ i = count·j + p·count(count−1)/2
        let positions = (count * j + p * (count * (count - 1) / 2)) % MOD;
        let weight = ((count % MOD) * (total % MOD) % MOD + MOD - positions) % MOD;
        b = (b + byte * weight) % MOD;
    }
    ((b << 16) | a) as u32
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl BitWriter {
    /// `count` bits of `value`, least significant first.
    fn write(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.len;
        self.len += count;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// A Huffman code, most significant bit first.
    fn write_code(&mut self, code: u32, count: u32) {
        let reversed = code.reverse_bits() >> (32 - count);
        self.write(reversed, count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}
