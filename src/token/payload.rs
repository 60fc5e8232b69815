//! The signed or encrypted payload: the term `{data, signed_at_ms, max_age_s}`
//! (Plug.Crypto's `encode/2`), and the expiry rule of its `decode/3`.
//!
//! Accepted shapes, as Plug: `{data, signed, max_age}`, `{data, signed}` and
//! `%{data: d, signed: s}` (both with max age 86400). A payload holding a fun
//! is refused like `non_executable_binary_to_term` refuses it. Expiry: max age
//! `:infinity` never expires; a max age `<= 0` always has; otherwise the token
//! is expired when `signed + trunc(max_age * 1000) < now` (still valid exactly
//! at the boundary).

use fawkes_etf::{decode, encode, json, EncodeError, EncodeOptions, OpaqueKind, Term};
use serde_json::Value;

use super::{system_now_ms, SignOptions, TokenError, VerifyOptions};

/// A token's max age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxAge {
    /// Never expires (`:infinity`).
    Infinity,
    /// Seconds, possibly fractional.
    Seconds(f64),
}

impl MaxAge {
    /// Parse `infinity` or a number of seconds (as the CLI takes it).
    pub fn parse(text: &str) -> Option<MaxAge> {
        if text == "infinity" {
            return Some(MaxAge::Infinity);
        }
        text.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .map(MaxAge::Seconds)
    }

    fn term(self) -> Term {
        match self {
            MaxAge::Infinity => Term::atom("infinity"),
            MaxAge::Seconds(s) if s.fract() == 0.0 && s.abs() < 9.0e15 => Term::Integer(s as i64),
            MaxAge::Seconds(s) => Term::Float(s),
        }
    }

    fn from_term(term: &Term) -> Option<MaxAge> {
        match term {
            Term::Atom(atom) if atom == "infinity" => Some(MaxAge::Infinity),
            Term::Integer(i) => Some(MaxAge::Seconds(*i as f64)),
            Term::BigInteger(big) => big.to_i128().map(|i| MaxAge::Seconds(i as f64)),
            Term::Float(f) => Some(MaxAge::Seconds(*f)),
            _ => None,
        }
    }

    fn expired(self, signed_ms: i128, now_ms: i128) -> bool {
        match self {
            MaxAge::Infinity => false,
            MaxAge::Seconds(s) if s <= 0.0 => true,
            // `as` saturates: a max age beyond i128 milliseconds never expires.
            MaxAge::Seconds(s) => signed_ms.saturating_add((s * 1000.0).trunc() as i128) < now_ms,
        }
    }
}

const DEFAULT_MAX_AGE: MaxAge = MaxAge::Seconds(86400.0);

/// The payload bytes for a term.
pub(super) fn seal(data: &Term, options: &SignOptions) -> Result<Vec<u8>, EncodeError> {
    let signed_at = options.signed_at_ms.unwrap_or_else(system_now_ms);
    let tuple = Term::Tuple(vec![
        data.clone(),
        Term::Integer(signed_at),
        options.max_age.term(),
    ]);
    encode(
        &tuple,
        &EncodeOptions {
            atoms: options.atoms,
            compression: None,
        },
    )
}

/// The payload bytes for JSON data (which always encodes).
pub(super) fn seal_json(data: &Value, options: &SignOptions) -> Vec<u8> {
    // A term made from JSON has only finite floats, short atoms and bounded
    // nesting, so it always encodes; an empty payload would fail verification.
    seal(&json::from_json(data), options).unwrap_or_default()
}

/// Decode a payload and apply the expiry rule.
pub(super) fn open(bytes: &[u8], options: &VerifyOptions) -> Result<Term, TokenError> {
    let term = decode(bytes).map_err(|_| TokenError::Invalid)?;
    if holds_fun(&term) {
        return Err(TokenError::Invalid);
    }
    let (data, signed, max_age) = match term {
        Term::Tuple(mut fields) if fields.len() == 3 => {
            let max_age = fields.pop();
            let signed = fields.pop();
            (fields.pop(), signed, max_age.map(|m| MaxAge::from_term(&m)))
        }
        Term::Tuple(mut fields) if fields.len() == 2 => {
            let signed = fields.pop();
            (fields.pop(), signed, Some(Some(DEFAULT_MAX_AGE)))
        }
        map @ Term::Map(_) => (
            map.map_get(&Term::atom("data")).cloned(),
            map.map_get(&Term::atom("signed")).cloned(),
            Some(Some(DEFAULT_MAX_AGE)),
        ),
        _ => return Err(TokenError::Invalid),
    };
    let (Some(data), Some(signed)) = (data, signed) else {
        return Err(TokenError::Invalid);
    };
    let signed_ms = match signed {
        Term::Integer(i) => i128::from(i),
        Term::BigInteger(big) => big.to_i128().ok_or(TokenError::Invalid)?,
        _ => return Err(TokenError::Invalid),
    };
    let max_age = match options.max_age {
        Some(max_age) => max_age,
        None => max_age.flatten().ok_or(TokenError::Invalid)?,
    };
    let now_ms = i128::from(options.now_ms.unwrap_or_else(system_now_ms));
    if max_age.expired(signed_ms, now_ms) {
        return Err(TokenError::Expired);
    }
    Ok(data)
}

fn holds_fun(term: &Term) -> bool {
    match term {
        Term::Opaque(opaque) => opaque.kind == OpaqueKind::Fun,
        Term::List(items) | Term::Tuple(items) => items.iter().any(holds_fun),
        Term::ImproperList { elements, tail } => elements.iter().any(holds_fun) || holds_fun(tail),
        Term::Map(pairs) => pairs.iter().any(|(k, v)| holds_fun(k) || holds_fun(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_valid_exactly_at_the_boundary() {
        let max_age = MaxAge::Seconds(10.0);
        assert!(!max_age.expired(1000, 11_000));
        assert!(max_age.expired(1000, 11_001));
        assert!(MaxAge::Seconds(0.0).expired(1000, 0));
        assert!(MaxAge::Seconds(-1.0).expired(1000, 0));
        assert!(!MaxAge::Infinity.expired(0, i128::MAX));
        // trunc(0.0015 * 1000) = 1 ms.
        assert!(!MaxAge::Seconds(0.0015).expired(1000, 1001));
        assert!(MaxAge::Seconds(0.0015).expired(1000, 1002));
    }

    #[test]
    fn other_payload_shapes_plug_accepts() {
        let now = VerifyOptions {
            max_age: None,
            now_ms: Some(1_000),
        };
        let two = encode(
            &Term::Tuple(vec![Term::Integer(7), Term::Integer(900)]),
            &EncodeOptions::default(),
        )
        .unwrap();
        assert_eq!(open(&two, &now), Ok(Term::Integer(7)));
        let map = Term::Map(vec![
            (Term::atom("data"), Term::binary("d")),
            (Term::atom("signed"), Term::Integer(900)),
        ]);
        let map = encode(&map, &EncodeOptions::default()).unwrap();
        assert_eq!(open(&map, &now), Ok(Term::binary("d")));
        let late = VerifyOptions {
            max_age: None,
            now_ms: Some(900 + 86_400_001),
        };
        assert_eq!(open(&two, &late), Err(TokenError::Expired));
        let one = encode(
            &Term::Tuple(vec![Term::Integer(7)]),
            &EncodeOptions::default(),
        )
        .unwrap();
        assert_eq!(open(&one, &now), Err(TokenError::Invalid));
        let bad_signed = encode(
            &Term::Tuple(vec![Term::Integer(7), Term::binary("x"), Term::Integer(1)]),
            &EncodeOptions::default(),
        )
        .unwrap();
        assert_eq!(open(&bad_signed, &now), Err(TokenError::Invalid));
        assert_eq!(open(b"not etf", &now), Err(TokenError::Invalid));
    }

    #[test]
    fn a_fun_in_the_payload_is_invalid() {
        // erl: term_to_binary({fun erlang:abs/1, 0, infinity})
        let bytes = [
            131, 104, 3, 113, 100, 0, 6, 101, 114, 108, 97, 110, 103, 100, 0, 3, 97, 98, 115, 97,
            1, 97, 0, 100, 0, 8, 105, 110, 102, 105, 110, 105, 116, 121,
        ];
        let options = VerifyOptions::default();
        assert_eq!(open(&bytes, &options), Err(TokenError::Invalid));
    }
}
