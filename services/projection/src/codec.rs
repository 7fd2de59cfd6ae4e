//! The small binary forms the projections keep some values in (posting
//! chunks here, the Learning Hub views' summaries and fact rows): varints,
//! strings, and a reader that refuses what is cut short or malformed.

/// Little-endian base-128, seven bits a byte, the high bit set on every
/// byte but the last.
pub fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A string: its length as a varint, then its UTF-8 bytes.
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u128);
    out.extend_from_slice(text.as_bytes());
}

/// A signed number as an unsigned one, small when near zero either side.
pub fn zigzag(value: i64) -> u128 {
    u128::from(((value << 1) ^ (value >> 63)) as u64)
}

pub fn unzigzag(value: u128) -> Option<i64> {
    let value = u64::try_from(value).ok()?;
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Reads what the `put_` functions wrote, from the start of `bytes`.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("cut short")?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len()).ok_or("cut short")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// The next `len` bytes as they are.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], String> {
        self.take(len)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn varint(&mut self) -> Result<u128, String> {
        let mut value = 0u128;
        for shift in (0..128).step_by(7) {
            let byte = self.byte()?;
            value |= u128::from(byte & 0x7f).checked_shl(shift).ok_or("varint too long")?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_owned())
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        u64::try_from(self.varint()?).map_err(|_| "number out of range".to_owned())
    }

    pub fn string(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "string length out of range")?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn numbers_and_strings_round_trip(value in any::<u128>(), signed in any::<i64>(), text in ".{0,20}") {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            put_varint(&mut out, zigzag(signed));
            put_str(&mut out, &text);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint().unwrap(), value);
            prop_assert_eq!(unzigzag(reader.varint().unwrap()), Some(signed));
            prop_assert_eq!(reader.string().unwrap(), text);
            prop_assert!(reader.is_done());
        }
    }

    #[test]
    fn small_numbers_take_one_byte_and_overlong_varints_are_refused() {
        let mut out = Vec::new();
        put_varint(&mut out, 127);
        put_varint(&mut out, zigzag(-1));
        assert_eq!(out, [127, 1]);
        assert!(Reader::new(&[0x80; 20]).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[5, b'a']).string().is_err());
    }
}
