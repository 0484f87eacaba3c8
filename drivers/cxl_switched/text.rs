// SPDX-License-Identifier: GPL-2.0

//! Texts for people: the names a portal keeps for its life, and UUIDs as text.

use kernel::{fmt, str::Formatter};

/// The longest text kept, in bytes.
const TEXT_MAX: usize = 128;

/// A short text, cut at [`TEXT_MAX`] bytes, written through the kernel's [`Formatter`].
///
/// # Invariants
///
/// `bytes[..len]` is what was written, or its longest prefix that fits.
#[derive(Clone, Copy)]
pub(crate) struct Text {
    bytes: [u8; TEXT_MAX],
    len: usize,
}

impl Text {
    /// The text `write` produces; what does not fit is cut, as these texts are for people.
    pub(crate) fn with(write: impl FnOnce(&mut Formatter<'_>) -> fmt::Result) -> Self {
        let mut bytes = [0u8; TEXT_MAX];
        let mut out = Formatter::new(&mut bytes);
        // A text too long for the buffer keeps the part that fits.
        let _ = write(&mut out);
        let len = out.bytes_written().min(TEXT_MAX);
        // INVARIANT: the formatter wrote `bytes[..len]`, up to the end of the buffer.
        Self { bytes, len }
    }

    /// The text: whole characters only, should the cut have split one.
    pub(crate) fn as_str(&self) -> &str {
        let b = self.bytes.get(..self.len).unwrap_or(&[]);
        match core::str::from_utf8(b) {
            Ok(s) => s,
            Err(e) => b
                .get(..e.valid_up_to())
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }
}

/// A UUID as text, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) struct Uuid<'a>(pub(crate) &'a [u8; 16]);

impl fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parses a UUID written as 32 hexadecimal digits, with or without the dashes of
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut digits = s.bytes().filter(|&c| c != b'-');
    for byte in out.iter_mut() {
        let hi = char::from(digits.next()?).to_digit(16)?;
        let lo = char::from(digits.next()?).to_digit(16)?;
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    digits.next().is_none().then_some(out)
}
