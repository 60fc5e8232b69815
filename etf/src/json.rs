//! The JSON mapping, both ways, as Phoenix's serializer (Jason) does it.
//!
//! | Erlang term | JSON |
//! |---|---|
//! | map with binary, atom or integer keys | object (keys become strings) |
//! | UTF-8 binary | string |
//! | binary that is not UTF-8 | no JSON form ([`NoJsonForm::InvalidUtf8`]; Jason raises too) |
//! | integer | number, exact digits |
//! | float | number |
//! | `nil` / `true` / `false` | `null` / `true` / `false` |
//! | any other atom | string |
//! | proper list | array |
//! | `{:binary, bytes}` (whole payload only) | a binary payload, see [`crate::pubsub_redis`] |
//! | pid, port, reference, fun, other tuple, improper list, bitstring | no JSON form |
//!
//! **Integers beyond 64 bits.** JSON text can carry any integer and Jason
//! writes all its digits; [`to_json_text`] does the same. A
//! `serde_json::Value` cannot hold an integer outside `i64`/`u64` exactly, so
//! [`to_json_value`] refuses such a term with
//! [`NoJsonForm::IntegerBeyond64Bits`] instead of rounding it; the caller then
//! uses the text form. Nothing is ever rounded silently.
//!
//! **Keys.** Two keys that become the same JSON key (`:a` and `"a"`) are
//! refused ([`NoJsonForm::DuplicateKey`]): a JSON object with repeated keys
//! means different things to different readers.
//!
//! The way back, [`from_json`], writes what Jason-decoded JSON is in Elixir:
//! objects become maps with binary keys in the order OTP writes small maps,
//! strings binaries, numbers the smallest integer form or a float, `null`
//! the atom `nil`.

use std::collections::HashSet;

use serde_json::{Map, Number, Value};

use crate::encode::sorted_map;
use crate::error::NoJsonForm;
use crate::term::{BigInt, Term};

/// How deep a term may nest to be mapped (the decoder's default limit).
const MAX_DEPTH: usize = 128;

/// A JSON value as a term (`null` → `nil`, objects → maps with binary keys).
pub fn from_json(value: &Value) -> Term {
    match value {
        Value::Null => Term::atom("nil"),
        Value::Bool(true) => Term::atom("true"),
        Value::Bool(false) => Term::atom("false"),
        Value::Number(number) => number_term(number),
        Value::String(text) => Term::binary(text),
        Value::Array(items) => Term::List(items.iter().map(from_json).collect()),
        Value::Object(map) => sorted_map(
            map.iter()
                .map(|(k, v)| (Term::binary(k), from_json(v)))
                .collect(),
        ),
    }
}

fn number_term(number: &Number) -> Term {
    if let Some(i) = number.as_i64() {
        Term::Integer(i)
    } else if let Some(u) = number.as_u64() {
        Term::BigInteger(BigInt::from_i128(i128::from(u)))
    } else {
        Term::Float(number.as_f64().unwrap_or(0.0))
    }
}

/// A term as a `serde_json::Value`, or why it has none.
pub fn to_json_value(term: &Term) -> Result<Value, NoJsonForm> {
    value(term, 0)
}

/// A term as JSON text, exact for integers of any size (as Jason writes them).
pub fn to_json_text(term: &Term) -> Result<String, NoJsonForm> {
    let mut out = String::new();
    text(term, &mut out, 0)?;
    Ok(out)
}

fn check_depth(depth: usize) -> Result<(), NoJsonForm> {
    if depth > MAX_DEPTH {
        return Err(NoJsonForm::TooDeep(MAX_DEPTH));
    }
    Ok(())
}

fn value(term: &Term, depth: usize) -> Result<Value, NoJsonForm> {
    check_depth(depth)?;
    Ok(match term {
        Term::Integer(i) => Value::from(*i),
        Term::BigInteger(big) => match big.to_u64() {
            Some(u) => Value::from(u),
            None => return Err(NoJsonForm::IntegerBeyond64Bits(big.to_decimal())),
        },
        // Finite by construction (decoder and encoder refuse NaN); null otherwise.
        Term::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Term::Atom(atom) => match atom.as_str() {
            "nil" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        Term::Binary(bytes) => Value::String(utf8(bytes)?.to_owned()),
        Term::List(items) => Value::Array(
            items
                .iter()
                .map(|item| value(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Term::Map(pairs) => {
            let mut map = Map::new();
            for (key, item) in pairs {
                let key = key_text(key)?;
                let item = value(item, depth + 1)?;
                if map.insert(key.clone(), item).is_some() {
                    return Err(NoJsonForm::DuplicateKey(key));
                }
            }
            Value::Object(map)
        }
        other => return Err(no_form(other)),
    })
}

fn text(term: &Term, out: &mut String, depth: usize) -> Result<(), NoJsonForm> {
    check_depth(depth)?;
    match term {
        Term::BigInteger(big) => out.push_str(&big.to_decimal()),
        Term::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                text(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Term::Map(pairs) => {
            let mut seen = HashSet::new();
            out.push('{');
            for (i, (key, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = key_text(key)?;
                out.push_str(&Value::String(key.clone()).to_string());
                if !seen.insert(key.clone()) {
                    return Err(NoJsonForm::DuplicateKey(key));
                }
                out.push(':');
                text(item, out, depth + 1)?;
            }
            out.push('}');
        }
        scalar => out.push_str(&value(scalar, depth)?.to_string()),
    }
    Ok(())
}

fn utf8(bytes: &[u8]) -> Result<&str, NoJsonForm> {
    std::str::from_utf8(bytes).map_err(|_| NoJsonForm::InvalidUtf8)
}

/// A map key as JSON key text: binaries and atoms as they are, integers in decimal.
fn key_text(key: &Term) -> Result<String, NoJsonForm> {
    match key {
        Term::Binary(bytes) => Ok(utf8(bytes)?.to_owned()),
        Term::Atom(atom) => Ok(atom.clone()),
        Term::Integer(i) => Ok(i.to_string()),
        Term::BigInteger(big) => Ok(big.to_decimal()),
        _ => Err(NoJsonForm::MapKey),
    }
}

fn no_form(term: &Term) -> NoJsonForm {
    match term {
        Term::Tuple(elements) => NoJsonForm::Tuple(elements.len()),
        Term::ImproperList { .. } => NoJsonForm::ImproperList,
        Term::BitBinary { .. } => NoJsonForm::BitBinary,
        Term::Opaque(opaque) => NoJsonForm::Opaque(opaque.kind.name()),
        _ => NoJsonForm::MapKey,
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // 3.14 is the recorded Phoenix payload, not PI
mod tests {
    use super::*;
    use crate::term::{Opaque, OpaqueKind};
    use serde_json::json;

    #[test]
    fn json_round_trips_through_terms() {
        let value = json!({
            "a": {"b": [1, {"c": [true, false, null]}]},
            "l": [[1, 2], [3], []],
            "i": [0, 255, 256, -1, 2147483648i64, i64::MIN, u64::MAX],
            "f": [3.14, -2.5, 1.0e-10, 0.0],
            "u": "héllo wörld ✓ 日本語 🎉",
            "e": {}
        });
        let term = from_json(&value);
        assert_eq!(to_json_value(&term).unwrap(), value);
        let text: Value = serde_json::from_str(&to_json_text(&term).unwrap()).unwrap();
        assert_eq!(text, value);
    }

    #[test]
    fn atoms_become_strings_and_nil_null() {
        let term = Term::Map(vec![
            (Term::atom("n"), Term::atom("nil")),
            (Term::atom("status"), Term::atom("away")),
            (Term::Integer(7), Term::atom("true")),
        ]);
        assert_eq!(
            to_json_value(&term).unwrap(),
            json!({"n": null, "status": "away", "7": true})
        );
    }

    #[test]
    fn big_integers_are_exact_in_text_and_refused_as_values() {
        let two_70 = Term::BigInteger(BigInt::new(false, &[0, 0, 0, 0, 0, 0, 0, 0, 0x40]));
        let list = Term::List(vec![two_70.clone(), Term::Integer(-1)]);
        assert_eq!(to_json_text(&list).unwrap(), "[1180591620717411303424,-1]");
        assert_eq!(
            to_json_value(&list),
            Err(NoJsonForm::IntegerBeyond64Bits(
                "1180591620717411303424".into()
            ))
        );
        let u64_max = Term::BigInteger(BigInt::from_i128(i128::from(u64::MAX)));
        assert_eq!(to_json_value(&u64_max).unwrap(), json!(u64::MAX));
    }

    #[test]
    fn terms_without_json_form_are_typed_errors() {
        let pid = Term::Opaque(Opaque {
            kind: OpaqueKind::Pid,
            encoded: vec![],
        });
        assert_eq!(to_json_value(&pid), Err(NoJsonForm::Opaque("pid")));
        let tuple = Term::List(vec![Term::Tuple(vec![Term::Integer(1), Term::Integer(2)])]);
        assert_eq!(to_json_value(&tuple), Err(NoJsonForm::Tuple(2)));
        assert_eq!(to_json_text(&tuple), Err(NoJsonForm::Tuple(2)));
        assert_eq!(
            to_json_value(&Term::Binary(vec![0xff])),
            Err(NoJsonForm::InvalidUtf8)
        );
        let improper = Term::ImproperList {
            elements: vec![Term::Integer(1)],
            tail: Box::new(Term::Integer(2)),
        };
        assert_eq!(to_json_value(&improper), Err(NoJsonForm::ImproperList));
        let dup = Term::Map(vec![
            (Term::atom("a"), Term::Integer(1)),
            (Term::binary("a"), Term::Integer(2)),
        ]);
        assert_eq!(
            to_json_value(&dup),
            Err(NoJsonForm::DuplicateKey("a".into()))
        );
        assert_eq!(
            to_json_text(&dup),
            Err(NoJsonForm::DuplicateKey("a".into()))
        );
        let tuple_key = Term::Map(vec![(Term::Tuple(vec![]), Term::Integer(1))]);
        assert_eq!(to_json_value(&tuple_key), Err(NoJsonForm::MapKey));
    }
}
