//! The bounded decoder: bytes from the network to a [`Term`], safe on hostile input.
//!
//! Why our own decoder and not the `eetf` crate: `eetf` is fine for trusted
//! data, but on hostile bytes it panics on some tags and reserves memory from
//! length fields before checking that the bytes exist, so a 10-byte message
//! can ask for gigabytes. A validating pre-pass in front of it would have to
//! walk every tag anyway, which is most of a decoder. So this module is the
//! decoder, with these rules:
//!
//! * every length and count is checked against the bytes left before anything
//!   is read or reserved; nothing is pre-allocated from a length field, so
//!   memory grows only with bytes actually consumed;
//! * nesting is limited ([`Limits::max_depth`]), and list tails are followed in
//!   a loop, not by recursion;
//! * a compressed term (tag 80) announces its inflated size; it is refused
//!   above [`Limits::max_inflated`], and inflation stops at that size;
//! * big integers are limited to [`Limits::max_big_bytes`] (their decimal form
//!   costs time quadratic in their length);
//! * what Erlang's `binary_to_term` refuses is refused too (NaN floats, atoms
//!   over 255 characters, duplicate map keys, bad bit counts); trailing bytes
//!   after the term are ignored, as `binary_to_term` does;
//! * distribution-only tags (atom cache refs, distribution headers, local
//!   ext) and the pre-OTP-23 `FUN_EXT` are refused.

use std::io::Read;

use crate::error::DecodeError;
use crate::tags;
use crate::term::{term_cmp, BigInt, Opaque, OpaqueKind, Term};

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists, tuples and maps (default 128, like serde_json).
    pub max_depth: usize,
    /// Largest inflated size of a compressed term, in bytes (default 8 MiB).
    pub max_inflated: usize,
    /// Longest big integer, in bytes of magnitude (default 1024, about 2466 digits).
    pub max_big_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 128,
            max_inflated: 8 * 1024 * 1024,
            max_big_bytes: 1024,
        }
    }
}

/// Decode a whole message (`131` then a term, possibly compressed) with the default limits.
pub fn decode(bytes: &[u8]) -> Result<Term, DecodeError> {
    decode_with(bytes, &Limits::default())
}

/// Decode a whole message with the given limits.
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Term, DecodeError> {
    let mut reader = Reader::new(bytes, limits);
    if reader.u8().map_err(|_| DecodeError::BadVersion)? != tags::VERSION {
        return Err(DecodeError::BadVersion);
    }
    if reader.peek() == Some(tags::COMPRESSED) {
        reader.pos += 1;
        let inflated = inflate(&mut reader, limits)?;
        let mut inner = Reader::new(&inflated, limits);
        return inner.term(0);
    }
    reader.term(0)
}

fn inflate(reader: &mut Reader<'_>, limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let size = reader.u32()? as usize;
    if size > limits.max_inflated {
        return Err(DecodeError::TooLarge {
            size,
            limit: limits.max_inflated,
        });
    }
    let rest = reader.rest();
    let mut out = Vec::new();
    // Read at most one byte more than announced, to notice a stream that is longer.
    flate2::read::ZlibDecoder::new(rest)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Compression(e.to_string()))?;
    if out.len() != size {
        return Err(DecodeError::Compression(format!(
            "inflated to {} bytes, {} announced",
            out.len(),
            size
        )));
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], limits: &'a Limits) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            limits,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n.saturating_sub(self.remaining()),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Check that `count` items of at least `min_size` bytes each can still follow.
    fn ensure_items(&self, count: usize, min_size: usize) -> Result<(), DecodeError> {
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: needed - self.remaining(),
            });
        }
        Ok(())
    }

    fn invalid(&self, offset: usize, reason: &'static str) -> DecodeError {
        DecodeError::Invalid { offset, reason }
    }

    fn term(&mut self, depth: usize) -> Result<Term, DecodeError> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        let start = self.pos;
        let tag = self.u8()?;
        match tag {
            tags::SMALL_INTEGER => Ok(Term::Integer(i64::from(self.u8()?))),
            tags::INTEGER => Ok(Term::Integer(i64::from(i32::from_be_bytes(self.array()?)))),
            tags::SMALL_BIG => {
                let n = usize::from(self.u8()?);
                self.big(n)
            }
            tags::LARGE_BIG => {
                let n = self.u32()? as usize;
                self.big(n)
            }
            tags::NEW_FLOAT => {
                let value = f64::from_be_bytes(self.array()?);
                if !value.is_finite() {
                    return Err(self.invalid(start, "float is not finite"));
                }
                Ok(Term::Float(value))
            }
            tags::FLOAT => self.old_float(start),
            tags::ATOM | tags::SMALL_ATOM | tags::ATOM_UTF8 | tags::SMALL_ATOM_UTF8 => {
                self.atom_body(tag, start).map(Term::Atom)
            }
            tags::SMALL_TUPLE => {
                let arity = usize::from(self.u8()?);
                self.tuple(arity, depth)
            }
            tags::LARGE_TUPLE => {
                let arity = self.u32()? as usize;
                self.tuple(arity, depth)
            }
            tags::NIL => Ok(Term::List(Vec::new())),
            tags::STRING => {
                let len = usize::from(self.u16()?);
                let bytes = self.take(len)?;
                Ok(Term::List(
                    bytes.iter().map(|b| Term::Integer(i64::from(*b))).collect(),
                ))
            }
            tags::LIST => self.list(depth),
            tags::BINARY => {
                let len = self.u32()? as usize;
                Ok(Term::Binary(self.take(len)?.to_vec()))
            }
            tags::BIT_BINARY => {
                let len = self.u32()? as usize;
                let bits = self.u8()?;
                let bytes = self.take(len)?.to_vec();
                match (len, bits) {
                    (0, 0) => Ok(Term::Binary(bytes)),
                    (1.., 8) => Ok(Term::Binary(bytes)),
                    (1.., 1..=7) => Ok(Term::BitBinary { bytes, bits }),
                    _ => Err(self.invalid(start, "bitstring bit count out of range")),
                }
            }
            tags::MAP => self.map(depth, start),
            tags::NEW_PID => self.opaque(OpaqueKind::Pid, start, depth, 12),
            tags::PID => self.opaque(OpaqueKind::Pid, start, depth, 9),
            tags::NEW_PORT => self.opaque(OpaqueKind::Port, start, depth, 8),
            tags::V4_PORT => self.opaque(OpaqueKind::Port, start, depth, 12),
            tags::PORT => self.opaque(OpaqueKind::Port, start, depth, 5),
            tags::REFERENCE => self.opaque(OpaqueKind::Reference, start, depth, 5),
            tags::NEW_REFERENCE | tags::NEWER_REFERENCE => {
                let words = usize::from(self.u16()?);
                if words > 5 {
                    return Err(self.invalid(start, "reference with more than 5 words"));
                }
                self.node_atom(start, depth)?;
                let creation = if tag == tags::NEW_REFERENCE { 1 } else { 4 };
                self.take(creation + 4 * words)?;
                Ok(self.opaque_from(OpaqueKind::Reference, start))
            }
            tags::EXPORT => {
                for _ in 0..2 {
                    if self.term(depth + 1)?.as_atom().is_none() {
                        return Err(self.invalid(start, "export fun without atoms"));
                    }
                }
                if !matches!(self.term(depth + 1)?, Term::Integer(0..=255)) {
                    return Err(self.invalid(start, "export fun arity is not a small integer"));
                }
                Ok(self.opaque_from(OpaqueKind::Fun, start))
            }
            tags::NEW_FUN => self.new_fun(start, depth),
            _ => Err(DecodeError::UnsupportedTag { tag, offset: start }),
        }
    }

    fn big(&mut self, n: usize) -> Result<Term, DecodeError> {
        if n > self.limits.max_big_bytes {
            return Err(DecodeError::BigIntegerTooLarge {
                size: n,
                limit: self.limits.max_big_bytes,
            });
        }
        let negative = self.u8()? != 0;
        let big = BigInt::new(negative, self.take(n)?);
        Ok(match big.to_i64() {
            Some(small) => Term::Integer(small),
            None => Term::BigInteger(big),
        })
    }

    fn old_float(&mut self, start: usize) -> Result<Term, DecodeError> {
        let raw = self.take(31)?;
        let text_len = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        let text = raw
            .get(..text_len)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| self.invalid(start, "float text is not ASCII"))?;
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Term::Float(value)),
            _ => Err(self.invalid(start, "float text does not parse")),
        }
    }

    fn atom_body(&mut self, tag: u8, start: usize) -> Result<String, DecodeError> {
        let len = match tag {
            tags::ATOM | tags::ATOM_UTF8 => usize::from(self.u16()?),
            _ => usize::from(self.u8()?),
        };
        let bytes = self.take(len)?;
        let text: String = match tag {
            tags::ATOM | tags::SMALL_ATOM => bytes.iter().map(|b| char::from(*b)).collect(),
            _ => std::str::from_utf8(bytes)
                .map_err(|_| self.invalid(start, "atom is not UTF-8"))?
                .to_owned(),
        };
        if text.chars().count() > 255 {
            return Err(self.invalid(start, "atom longer than 255 characters"));
        }
        Ok(text)
    }

    fn node_atom(&mut self, start: usize, depth: usize) -> Result<(), DecodeError> {
        match self.term(depth + 1)? {
            Term::Atom(_) => Ok(()),
            _ => Err(self.invalid(start, "node name is not an atom")),
        }
    }

    fn opaque(
        &mut self,
        kind: OpaqueKind,
        start: usize,
        depth: usize,
        fixed: usize,
    ) -> Result<Term, DecodeError> {
        self.node_atom(start, depth)?;
        self.take(fixed)?;
        Ok(self.opaque_from(kind, start))
    }

    fn opaque_from(&self, kind: OpaqueKind, start: usize) -> Term {
        let encoded = self.buf.get(start..self.pos).unwrap_or(&[]).to_vec();
        Term::Opaque(Opaque { kind, encoded })
    }

    fn new_fun(&mut self, start: usize, depth: usize) -> Result<Term, DecodeError> {
        let size = self.u32()? as usize;
        // arity (1), uniq (16), index (4), number of free variables (4).
        let header = self.take(25)?;
        let num_free = header
            .get(21..25)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0) as usize;
        self.ensure_items(num_free, 1)?;
        if self.term(depth + 1)?.as_atom().is_none() {
            return Err(self.invalid(start, "fun module is not an atom"));
        }
        for _ in 0..2 {
            if !matches!(self.term(depth + 1)?, Term::Integer(_)) {
                return Err(self.invalid(start, "fun index or uniq is not an integer"));
            }
        }
        if !matches!(
            self.term(depth + 1)?,
            Term::Opaque(Opaque {
                kind: OpaqueKind::Pid,
                ..
            })
        ) {
            return Err(self.invalid(start, "fun creator is not a pid"));
        }
        for _ in 0..num_free {
            self.term(depth + 1)?;
        }
        if self.pos - start - 1 != size {
            return Err(self.invalid(start, "fun size does not match its contents"));
        }
        Ok(self.opaque_from(OpaqueKind::Fun, start))
    }

    fn tuple(&mut self, arity: usize, depth: usize) -> Result<Term, DecodeError> {
        self.ensure_items(arity, 1)?;
        let mut elements = Vec::new();
        for _ in 0..arity {
            elements.push(self.term(depth + 1)?);
        }
        Ok(Term::Tuple(elements))
    }

    /// A LIST_EXT: elements, then a tail. A tail that is itself a list is
    /// followed in this loop (so `[1 | [2 | [3]]]` costs no recursion).
    fn list(&mut self, depth: usize) -> Result<Term, DecodeError> {
        let mut elements = Vec::new();
        loop {
            let count = self.u32()? as usize;
            // Each element is at least one byte, and so is the tail.
            self.ensure_items(count.saturating_add(1), 1)?;
            for _ in 0..count {
                elements.push(self.term(depth + 1)?);
            }
            match self.peek() {
                Some(tags::NIL) => {
                    self.pos += 1;
                    return Ok(Term::List(elements));
                }
                Some(tags::LIST) => self.pos += 1,
                Some(tags::STRING) => {
                    if let Term::List(more) = self.term(depth + 1)? {
                        elements.extend(more);
                    }
                    return Ok(Term::List(elements));
                }
                _ => {
                    let tail = self.term(depth + 1)?;
                    if elements.is_empty() {
                        return Ok(tail);
                    }
                    return Ok(Term::ImproperList {
                        elements,
                        tail: Box::new(tail),
                    });
                }
            }
        }
    }

    fn map(&mut self, depth: usize, start: usize) -> Result<Term, DecodeError> {
        let count = self.u32()? as usize;
        self.ensure_items(count, 2)?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let key = self.term(depth + 1)?;
            let value = self.term(depth + 1)?;
            pairs.push((key, value));
        }
        let mut keys: Vec<&Term> = pairs.iter().map(|(k, _)| k).collect();
        keys.sort_by(|a, b| term_cmp(a, b));
        if keys.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
            return Err(self.invalid(start, "map with a duplicate key"));
        }
        Ok(Term::Map(pairs))
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // 3.14 is the recorded Phoenix payload, not PI
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_scalars() {
        assert_eq!(decode(&[131, 97, 255]).unwrap(), Term::Integer(255));
        assert_eq!(
            decode(&[131, 98, 255, 255, 255, 1]).unwrap(),
            Term::Integer(-255)
        );
        assert_eq!(
            decode(&hex("836e0900000000000000000040")).unwrap().clone(),
            Term::BigInteger(BigInt::new(false, &[0, 0, 0, 0, 0, 0, 0, 0, 0x40]))
        );
        assert_eq!(decode(&[131, 110, 1, 1, 5]).unwrap(), Term::Integer(-5));
        assert_eq!(
            decode(&[131, 100, 0, 3, b'n', b'i', b'l']).unwrap(),
            Term::atom("nil")
        );
        assert_eq!(
            decode(&[131, 119, 3, b'n', b'i', b'l']).unwrap(),
            Term::atom("nil")
        );
        assert_eq!(decode(&[131, 115, 1, 0xe9]).unwrap(), Term::atom("é"));
        assert_eq!(
            decode(&[131, 118, 0, 2, 0xc3, 0xa9]).unwrap(),
            Term::atom("é")
        );
        assert_eq!(
            decode(&[131, 70, 0x40, 0x09, 0x1e, 0xb8, 0x51, 0xeb, 0x85, 0x1f]).unwrap(),
            Term::Float(3.14)
        );
        let mut old_float = vec![131, 99];
        old_float.extend(format!("{:<31}", "1.50000000000000000000e+00").bytes());
        old_float.truncate(2 + 26);
        old_float.resize(2 + 31, 0);
        assert_eq!(decode(&old_float).unwrap(), Term::Float(1.5));
    }

    #[test]
    fn decodes_lists_strings_and_improper_tails() {
        assert_eq!(
            decode(&[131, 107, 0, 2, 1, 2]).unwrap(),
            Term::List(vec![Term::Integer(1), Term::Integer(2)])
        );
        // [1 | [2]] written with a list tail is the proper list [1, 2].
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106]).unwrap(),
            Term::List(vec![Term::Integer(1), Term::Integer(2)])
        );
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 97, 2]).unwrap(),
            Term::ImproperList {
                elements: vec![Term::Integer(1)],
                tail: Box::new(Term::Integer(2))
            }
        );
    }

    #[test]
    fn decodes_a_compressed_term() {
        // erl: term_to_binary(lists:duplicate(100, a), [compressed])
        let bytes = [
            131, 80, 0, 0, 1, 150, 120, 156, 203, 97, 96, 96, 72, 73, 97, 96, 76, 28, 197, 131, 7,
            103, 1, 0, 48, 70, 78, 147,
        ];
        assert_eq!(
            decode(&bytes).unwrap(),
            Term::List(vec![Term::atom("a"); 100])
        );
        let small = Limits {
            max_inflated: 100,
            ..Limits::default()
        };
        assert!(matches!(
            decode_with(&bytes, &small),
            Err(DecodeError::TooLarge { .. })
        ));
        // A lying size: the stream inflates to 406 bytes, 500 announced.
        let mut lying = bytes;
        lying[5] = 0xf4;
        assert!(matches!(decode(&lying), Err(DecodeError::Compression(_))));
    }

    #[test]
    fn refuses_lengths_beyond_the_message() {
        // A list claiming 2^32-1 elements in a 10-byte message: refused before any allocation.
        assert!(matches!(
            decode(&[131, 108, 255, 255, 255, 255, 97, 1, 106]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[131, 116, 255, 255, 255, 255]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[131, 109, 255, 255, 255, 255, 0]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[131, 105, 255, 255, 255, 255]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(decode(&[]), Err(DecodeError::BadVersion)));
        assert!(matches!(
            decode(&[130, 97, 1]),
            Err(DecodeError::BadVersion)
        ));
    }

    #[test]
    fn refuses_what_binary_to_term_refuses() {
        assert!(decode(&[131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[131, 116, 0, 0, 0, 2, 97, 1, 97, 2, 97, 1, 97, 3]).is_err());
        assert!(decode(&[131, 77, 0, 0, 0, 1, 9, 0]).is_err());
        assert!(decode(&[131, 82, 0]).is_err());
        assert!(decode(&[131, 119, 2, 0xc3, 0x28]).is_err());
    }

    #[test]
    fn limits_nesting_depth() {
        let mut deep = vec![131];
        for _ in 0..200 {
            deep.extend([104, 1]);
        }
        deep.push(106);
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep { limit: 128 }));
        let mut ok = vec![131];
        for _ in 0..100 {
            ok.extend([104, 1]);
        }
        ok.push(106);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn keeps_pids_and_references_as_opaque() {
        // NEW_PID_EXT for <0.680.0> on nonode@nohost, as Phoenix.Tracker deltas carry them.
        let pid = hex("835864000d6e6f6e6f6465406e6f686f7374000002a80000000000000000");
        match decode(&pid).unwrap() {
            Term::Opaque(opaque) => {
                assert_eq!(opaque.kind, OpaqueKind::Pid);
                assert_eq!(opaque.encoded, pid[1..]);
            }
            other => panic!("not opaque: {other:?}"),
        }
    }

    #[test]
    fn ignores_trailing_bytes_like_binary_to_term() {
        assert_eq!(decode(&[131, 97, 1, 0]).unwrap(), Term::Integer(1));
    }
}
