//! The container: magic, version, a sequence of tagged sections, each with
//! its own CRC-32, and a trailer with the CRC-32 of the whole file.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  89 4B 49 4C 4E 0D 0A 1A   ("\x89KILN\r\n\x1a")
//! 8       4     format version, u32 little-endian
//! 12      4     flags, u32 LE (0; reserved)
//! 16      ...   sections, each:
//!                 4  tag (ASCII)
//!                 8  payload length n, u64 LE
//!                 4  CRC-32 of the payload, u32 LE
//!                 n  payload
//! end-16  16    trailer section: tag "END!", length 4, CRC-32 of the
//!               4-byte payload, payload = CRC-32 of every byte before the
//!               trailer
//! ```
//!
//! Tags follow PNG's rule: an uppercase first letter marks a section a
//! reader must understand (an unknown one is an error naming it), a lowercase
//! first letter one it may skip. That is how new backends and new optional
//! data are added without a format break.

use super::FormatError;

pub const MAGIC: [u8; 8] = [0x89, b'K', b'I', b'L', b'N', b'\r', b'\n', 0x1A];
pub const VERSION: u32 = 1;
pub const END: [u8; 4] = *b"END!";
const HEADER: usize = 16;
const SECTION_HEAD: usize = 16;

pub fn tag_str(tag: [u8; 4]) -> String {
    tag.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// Serializes sections (in order) into a complete file.
pub fn write(sections: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let total: usize = HEADER + sections.iter().map(|(_, p)| SECTION_HEAD + p.len()).sum::<usize>() + SECTION_HEAD + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (tag, payload) in sections {
        push_section(&mut out, *tag, payload);
    }
    let whole = crc32fast::hash(&out).to_le_bytes();
    push_section(&mut out, END, &whole);
    out
}

fn push_section(out: &mut Vec<u8>, tag: [u8; 4], payload: &[u8]) {
    out.extend_from_slice(&tag);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One section as read: its tag, payload, and byte offset of its header.
#[derive(Debug, Clone, PartialEq)]
pub struct Section<'a> {
    pub tag: [u8; 4],
    pub offset: usize,
    pub payload: &'a [u8],
}

/// Checks magic, version, every section's CRC and the whole-file CRC, and
/// returns the sections (without the trailer). Never allocates more than the
/// input's size, whatever the length fields say.
pub fn read(bytes: &[u8]) -> Result<Vec<Section<'_>>, FormatError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        // A prefix of the magic is a truncated kiln file, anything else is not one.
        if !bytes.is_empty() && MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            return Err(FormatError::Truncated { at: "header".into(), needed: HEADER, available: bytes.len() });
        }
        return Err(FormatError::NotKiln);
    }
    if bytes.len() < HEADER {
        return Err(FormatError::Truncated { at: "header".into(), needed: HEADER, available: bytes.len() });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let flags = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    let mut pos = HEADER;
    let mut sections = Vec::new();
    loop {
        if bytes.len() - pos < SECTION_HEAD {
            return Err(FormatError::Truncated {
                at: format!("section header at byte {pos} (no END! trailer)"),
                needed: pos + SECTION_HEAD,
                available: bytes.len(),
            });
        }
        let tag: [u8; 4] = bytes[pos..pos + 4].try_into().unwrap();
        let len = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[pos + 12..pos + 16].try_into().unwrap());
        let start = pos + SECTION_HEAD;
        let avail = (bytes.len() - start) as u64;
        if len > avail {
            // Either the file was cut or the length field is corrupt; the
            // whole-file CRC cannot be checked, so report the cut.
            return Err(FormatError::Truncated {
                at: format!("section {} at byte {pos}", tag_str(tag)),
                needed: start.saturating_add(len.min(usize::MAX as u64) as usize),
                available: bytes.len(),
            });
        }
        let payload = &bytes[start..start + len as usize];
        if crc32fast::hash(payload) != crc {
            return Err(FormatError::Checksum { section: tag_str(tag), offset: pos });
        }
        pos = start + len as usize;
        if tag == END {
            let stored = payload.try_into().map(u32::from_le_bytes).map_err(|_| FormatError::Corrupt {
                section: "END!".into(),
                reason: format!("trailer payload is {} bytes, expected 4", payload.len()),
            })?;
            let trailer_at = pos - SECTION_HEAD - payload.len();
            if crc32fast::hash(&bytes[..trailer_at]) != stored {
                return Err(FormatError::Checksum { section: "whole file".into(), offset: 0 });
            }
            if pos != bytes.len() {
                return Err(FormatError::Corrupt { section: "END!".into(), reason: format!("{} bytes after the trailer", bytes.len() - pos) });
            }
            break;
        }
        sections.push(Section { tag, offset: pos - SECTION_HEAD - payload.len(), payload });
    }
    // Checked after the checksums so that a flipped version bit reads as
    // corruption, while a genuine newer file reads as a version error.
    if version != VERSION {
        return Err(FormatError::Version { found: version, supported: VERSION });
    }
    if flags != 0 {
        return Err(FormatError::Corrupt { section: "header".into(), reason: format!("unknown flags 0x{flags:08x}") });
    }
    Ok(sections)
}

/// The byte offsets where each section (and the trailer) starts, and the
/// file length: the boundaries truncation tests cut at.
pub fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut v = vec![0, MAGIC.len(), HEADER];
    let mut pos = HEADER;
    while bytes.len() >= pos + SECTION_HEAD {
        v.push(pos);
        v.push(pos + 4);
        v.push(pos + SECTION_HEAD);
        let len = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap()) as usize;
        pos = pos + SECTION_HEAD + len;
        if pos > bytes.len() {
            break;
        }
    }
    v.push(bytes.len());
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write(&[(*b"META", b"{}".to_vec()), (*b"DATA", vec![7; 100]), (*b"note", vec![])])
    }

    #[test]
    fn roundtrip() {
        let f = sample();
        let s = read(&f).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].tag, *b"DATA");
        assert_eq!(s[1].payload, &[7; 100][..]);
        assert_eq!(s[2].payload.len(), 0);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let f = sample();
        for cut in 0..f.len() {
            assert!(read(&f[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..f.len() * 8 {
            let mut g = f.clone();
            g[i / 8] ^= 1 << (i % 8);
            assert!(read(&g).is_err(), "flip bit {i}");
        }
    }

    #[test]
    fn version_and_magic_errors() {
        assert_eq!(read(b"PK\x03\x04 not kiln at all").unwrap_err(), FormatError::NotKiln);
        assert_eq!(read(b"").unwrap_err(), FormatError::NotKiln);
        // A consistent file of a newer version (checksums recomputed).
        let mut f = write(&[(*b"META", b"{}".to_vec())]);
        f[8..12].copy_from_slice(&2u32.to_le_bytes());
        let body = f.len() - 20;
        let whole = crc32fast::hash(&f[..body]).to_le_bytes();
        f.truncate(body);
        push_section(&mut f, END, &whole);
        assert_eq!(read(&f).unwrap_err(), FormatError::Version { found: 2, supported: 1 });
    }
}
