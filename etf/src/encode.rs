//! The encoder: a [`Term`] to bytes, as OTP's `term_to_binary` writes them.
//!
//! Choices that make the bytes match OTP's: integers use the smallest of
//! SMALL_INTEGER (0..=255), INTEGER (32-bit) and SMALL_BIG/LARGE_BIG; a
//! non-empty list of integers 0..=255 shorter than 65536 is a STRING_EXT;
//! atoms follow [`AtomEncoding`] (OTP 25 writes ATOM_EXT, OTP 26+ writes
//! SMALL_ATOM_UTF8); map pairs are written in the order the [`Term::Map`]
//! holds them (OTP sorts maps of up to 32 keys in term order: build them with
//! [`sorted_map`] to get the same bytes; larger maps are in hash order in OTP,
//! which no reader depends on). A compressed term is only written when it is
//! smaller, like `term_to_binary(T, [{compressed, N}])`; its zlib bytes come
//! from `flate2`, not OTP's zlib, so they decode the same but may differ.

use std::io::Write;

use crate::error::EncodeError;
use crate::tags;
use crate::term::{term_cmp, Term};

/// How atoms are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtomEncoding {
    /// As OTP 25 (`minor_version: 1`): ATOM_EXT for Latin-1 atoms, UTF-8 tags otherwise.
    #[default]
    Latin1,
    /// As OTP 26+ (`minor_version: 2`): SMALL_ATOM_UTF8 / ATOM_UTF8 always.
    Utf8,
}

/// Options of [`encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// Atom tags to use.
    pub atoms: AtomEncoding,
    /// zlib level 1..=9 to compress with (0 or `None`: uncompressed).
    pub compression: Option<u32>,
}

const MAX_DEPTH: usize = 512;

/// Encode a term as a whole message (version byte 131 first).
pub fn encode(term: &Term, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let mut body = Vec::new();
    write_term(&mut body, term, options.atoms, 0)?;
    let level = options.compression.unwrap_or(0);
    if level > 9 {
        return Err(EncodeError::BadCompressionLevel(level));
    }
    if level > 0 {
        let size = u32::try_from(body.len()).map_err(|_| EncodeError::TooLarge)?;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        zlib.write_all(&body)
            .map_err(|e| EncodeError::Compression(e.to_string()))?;
        let compressed = zlib
            .finish()
            .map_err(|e| EncodeError::Compression(e.to_string()))?;
        // OTP keeps the uncompressed form unless compression makes it smaller.
        if compressed.len() + 5 < body.len() {
            let mut out = Vec::with_capacity(compressed.len() + 6);
            out.push(tags::VERSION);
            out.push(tags::COMPRESSED);
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&compressed);
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tags::VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

/// A map term with its pairs in Erlang term order of keys (what OTP writes
/// for maps of up to 32 keys).
pub fn sorted_map(mut pairs: Vec<(Term, Term)>) -> Term {
    pairs.sort_by(|a, b| term_cmp(&a.0, &b.0));
    Term::Map(pairs)
}

fn len_u32(len: usize) -> Result<[u8; 4], EncodeError> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| EncodeError::TooLarge)
}

fn write_term(
    out: &mut Vec<u8>,
    term: &Term,
    atoms: AtomEncoding,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep(MAX_DEPTH));
    }
    match term {
        Term::Integer(value) => write_integer(out, *value),
        Term::BigInteger(big) => {
            write_big(out, big.is_negative(), big.magnitude())?;
        }
        Term::Float(value) => {
            if !value.is_finite() {
                return Err(EncodeError::NonFiniteFloat);
            }
            out.push(tags::NEW_FLOAT);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Term::Atom(text) => write_atom(out, text, atoms)?,
        Term::Binary(bytes) => {
            out.push(tags::BINARY);
            out.extend_from_slice(&len_u32(bytes.len())?);
            out.extend_from_slice(bytes);
        }
        Term::BitBinary { bytes, bits } => {
            if bytes.is_empty() || !(1..=7).contains(bits) {
                return Err(EncodeError::InvalidBitBinary);
            }
            out.push(tags::BIT_BINARY);
            out.extend_from_slice(&len_u32(bytes.len())?);
            out.push(*bits);
            out.extend_from_slice(bytes);
        }
        Term::List(elements) => write_list(out, elements, None, atoms, depth)?,
        Term::ImproperList { elements, tail } => {
            write_list(out, elements, Some(tail), atoms, depth)?
        }
        Term::Tuple(elements) => {
            match u8::try_from(elements.len()) {
                Ok(arity) => out.extend_from_slice(&[tags::SMALL_TUPLE, arity]),
                Err(_) => {
                    out.push(tags::LARGE_TUPLE);
                    out.extend_from_slice(&len_u32(elements.len())?);
                }
            }
            for element in elements {
                write_term(out, element, atoms, depth + 1)?;
            }
        }
        Term::Map(pairs) => {
            out.push(tags::MAP);
            out.extend_from_slice(&len_u32(pairs.len())?);
            for (key, value) in pairs {
                write_term(out, key, atoms, depth + 1)?;
                write_term(out, value, atoms, depth + 1)?;
            }
        }
        Term::Opaque(opaque) => out.extend_from_slice(&opaque.encoded),
    }
    Ok(())
}

fn write_integer(out: &mut Vec<u8>, value: i64) {
    if let Ok(small) = u8::try_from(value) {
        out.extend_from_slice(&[tags::SMALL_INTEGER, small]);
    } else if let Ok(int) = i32::try_from(value) {
        out.push(tags::INTEGER);
        out.extend_from_slice(&int.to_be_bytes());
    } else {
        let bytes = value.unsigned_abs().to_le_bytes();
        let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        // An i64 outside i32 always has a non-zero byte, and at most 8 bytes.
        let _ = write_big(out, value < 0, bytes.get(..used).unwrap_or(&bytes));
    }
}

fn write_big(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) -> Result<(), EncodeError> {
    match u8::try_from(magnitude.len()) {
        Ok(n) => out.extend_from_slice(&[tags::SMALL_BIG, n]),
        Err(_) => {
            out.push(tags::LARGE_BIG);
            out.extend_from_slice(&len_u32(magnitude.len())?);
        }
    }
    out.push(u8::from(negative));
    out.extend_from_slice(magnitude);
    Ok(())
}

fn write_atom(out: &mut Vec<u8>, text: &str, atoms: AtomEncoding) -> Result<(), EncodeError> {
    if text.chars().count() > 255 {
        return Err(EncodeError::AtomTooLong);
    }
    let latin1 = text.chars().all(|c| u32::from(c) < 256);
    if atoms == AtomEncoding::Latin1 && latin1 {
        out.push(tags::ATOM);
        out.extend_from_slice(&(text.chars().count() as u16).to_be_bytes());
        out.extend(text.chars().map(|c| u32::from(c) as u8));
        return Ok(());
    }
    let bytes = text.as_bytes();
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend_from_slice(&[tags::SMALL_ATOM_UTF8, len]),
        Err(_) => {
            out.push(tags::ATOM_UTF8);
            // At most 255 characters of at most 4 bytes: fits a u16.
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
    Ok(())
}

fn write_list(
    out: &mut Vec<u8>,
    elements: &[Term],
    tail: Option<&Term>,
    atoms: AtomEncoding,
    depth: usize,
) -> Result<(), EncodeError> {
    if elements.is_empty() {
        return match tail {
            None => {
                out.push(tags::NIL);
                Ok(())
            }
            Some(tail) => write_term(out, tail, atoms, depth),
        };
    }
    if tail.is_none() && elements.len() < 65536 {
        let bytes: Option<Vec<u8>> = elements
            .iter()
            .map(|e| match e {
                Term::Integer(i) => u8::try_from(*i).ok(),
                _ => None,
            })
            .collect();
        if let Some(bytes) = bytes {
            out.push(tags::STRING);
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&bytes);
            return Ok(());
        }
    }
    out.push(tags::LIST);
    out.extend_from_slice(&len_u32(elements.len())?);
    for element in elements {
        write_term(out, element, atoms, depth + 1)?;
    }
    match tail {
        None => out.push(tags::NIL),
        Some(tail) => write_term(out, tail, atoms, depth + 1)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::term::BigInt;

    fn plain(term: &Term) -> Vec<u8> {
        encode(term, &EncodeOptions::default()).unwrap()
    }

    #[test]
    fn integers_use_the_smallest_tag() {
        assert_eq!(plain(&Term::Integer(255)), [131, 97, 255]);
        assert_eq!(plain(&Term::Integer(-255)), [131, 98, 255, 255, 255, 1]);
        assert_eq!(
            plain(&Term::Integer(2_147_483_648)),
            [131, 110, 4, 0, 0, 0, 0, 128]
        );
        assert_eq!(
            plain(&Term::Integer(i64::MIN)),
            [131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128]
        );
        let two_70 = Term::BigInteger(BigInt::new(false, &[0, 0, 0, 0, 0, 0, 0, 0, 0x40]));
        assert_eq!(
            plain(&two_70),
            [131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40]
        );
        let huge = Term::BigInteger(BigInt::new(true, &[1; 300]));
        let bytes = plain(&huge);
        assert_eq!(bytes.get(..7), Some(&[131, 111, 0, 0, 1, 44, 1][..]));
        assert_eq!(decode(&bytes).unwrap(), huge);
    }

    #[test]
    fn small_int_lists_are_strings_like_otp() {
        let list = Term::List(vec![Term::Integer(1), Term::Integer(2)]);
        assert_eq!(plain(&list), [131, 107, 0, 2, 1, 2]);
        assert_eq!(plain(&Term::List(vec![])), [131, 106]);
        let mixed = Term::List(vec![Term::Integer(1), Term::Integer(300)]);
        assert_eq!(
            plain(&mixed),
            [131, 108, 0, 0, 0, 2, 97, 1, 98, 0, 0, 1, 44, 106]
        );
    }

    #[test]
    fn atoms_follow_the_chosen_otp_style() {
        let nil = Term::atom("nil");
        assert_eq!(plain(&nil), [131, 100, 0, 3, b'n', b'i', b'l']);
        let utf8 = EncodeOptions {
            atoms: AtomEncoding::Utf8,
            compression: None,
        };
        assert_eq!(
            encode(&nil, &utf8).unwrap(),
            [131, 119, 3, b'n', b'i', b'l']
        );
        // Not Latin-1: UTF-8 tag even in the OTP 25 style.
        assert_eq!(plain(&Term::atom("日")), [131, 119, 3, 0xe6, 0x97, 0xa5]);
        assert_eq!(plain(&Term::atom("é")), [131, 100, 0, 1, 0xe9]);
        assert_eq!(
            encode(&Term::atom("x".repeat(256)), &utf8),
            Err(EncodeError::AtomTooLong)
        );
    }

    #[test]
    fn compresses_only_when_smaller() {
        let options = EncodeOptions {
            atoms: AtomEncoding::Latin1,
            compression: Some(6),
        };
        let small = Term::binary("abc");
        assert_eq!(
            encode(&small, &options).unwrap(),
            [131, 109, 0, 0, 0, 3, b'a', b'b', b'c']
        );
        let big = Term::List(vec![Term::atom("a"); 100]);
        let bytes = encode(&big, &options).unwrap();
        assert_eq!(bytes.get(..6), Some(&[131, 80, 0, 0, 1, 150][..]));
        assert_eq!(decode(&bytes).unwrap(), big);
        let bad = EncodeOptions {
            compression: Some(10),
            ..options
        };
        assert_eq!(
            encode(&big, &bad),
            Err(EncodeError::BadCompressionLevel(10))
        );
    }

    #[test]
    fn sorted_map_uses_term_order() {
        let map = sorted_map(vec![
            (Term::binary("b"), Term::Integer(1)),
            (Term::atom("z"), Term::Integer(2)),
            (Term::binary("a"), Term::Integer(3)),
        ]);
        // erl: term_to_binary(#{<<"b">> => 1, z => 2, <<"a">> => 3})
        assert_eq!(
            plain(&map),
            [
                131, 116, 0, 0, 0, 3, 100, 0, 1, b'z', 97, 2, 109, 0, 0, 0, 1, b'a', 97, 3, 109, 0,
                0, 0, 1, b'b', 97, 1
            ]
        );
    }
}
