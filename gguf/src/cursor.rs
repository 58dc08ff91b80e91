//! A bounds-checked little-endian reader over a prefix of a file.
//!
//! Every read is checked, in this order, against the end of the file (a verdict), the header
//! budget (a verdict) and the end of the buffer (not a verdict: "need more bytes").

use crate::GgufError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: u64,
    file_size: u64,
    max_header: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], file_size: u64, max_header: u64) -> Self {
        // A buffer longer than the stated file size is clipped: the file size is the truth.
        let usable = usize::try_from(file_size).map_or(buf.len(), |n| n.min(buf.len()));
        Cursor {
            buf: &buf[..usable],
            pos: 0,
            file_size,
            max_header,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.pos
    }

    /// Bytes between the cursor and the end of the file.
    pub(crate) fn remaining(&self) -> u64 {
        self.file_size.saturating_sub(self.pos)
    }

    /// Bytes between the cursor and the end of the header budget.
    pub(crate) fn budget_remaining(&self) -> u64 {
        self.max_header.saturating_sub(self.pos)
    }

    pub(crate) fn max_header(&self) -> u64 {
        self.max_header
    }

    pub(crate) fn take(
        &mut self,
        n: u64,
        field: impl FnOnce() -> String,
    ) -> Result<&'a [u8], GgufError> {
        let offset = self.pos;
        let remaining = self.remaining();
        if n > remaining {
            return Err(GgufError::Truncated {
                field: field(),
                offset,
                needed: n,
                remaining,
            });
        }
        let end = offset + n; // cannot overflow: n <= file_size - offset
        if end > self.max_header {
            return Err(GgufError::HeaderTooLarge {
                field: field(),
                offset,
                limit: self.max_header,
            });
        }
        let have = self.buf.len() as u64;
        if end > have {
            return Err(GgufError::NeedMoreBytes { have, needed: end });
        }
        // Both bounds are <= buf.len(), which is a usize.
        let slice = &self.buf[offset as usize..end as usize];
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: impl FnOnce() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string; the length is checked against the file before reading.
    pub(crate) fn string(&mut self, field: impl Fn() -> String) -> Result<String, GgufError> {
        let len_offset = self.pos;
        let length = self.u64(&field)?;
        let remaining = self.remaining();
        if length > remaining {
            return Err(GgufError::StringLengthTooLarge {
                field: field(),
                offset: len_offset,
                length,
                remaining,
            });
        }
        let start = self.pos;
        let bytes = self.take(length, &field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                field: field(),
                offset: start,
            }),
        }
    }
}
