//! The term model: what a decoded Erlang term is, in Rust values.
//!
//! Integers that fit an `i64` are [`Term::Integer`]; all others are a
//! [`BigInt`] (sign and little-endian magnitude, as the wire carries them), so
//! no integer is ever rounded. Pids, ports, references and funs are kept as
//! their encoded bytes ([`Opaque`]): fawkes never looks inside them, but they
//! can be written back unchanged and reported as having no JSON form.

use std::cmp::Ordering;

/// An Erlang term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// An integer that fits in an `i64`.
    Integer(i64),
    /// An integer that does not fit in an `i64`.
    BigInteger(BigInt),
    /// A float (always finite: Erlang has no NaN or infinity).
    Float(f64),
    /// An atom, as UTF-8 text (Latin-1 atoms are converted).
    Atom(String),
    /// A binary (a whole number of bytes).
    Binary(Vec<u8>),
    /// A bitstring whose last byte holds only `bits` (1..=7) significant bits.
    BitBinary {
        /// The bytes, the last one partly used.
        bytes: Vec<u8>,
        /// Significant bits of the last byte, 1..=7.
        bits: u8,
    },
    /// A proper list (`[]` is the empty one).
    List(Vec<Term>),
    /// A list whose tail is not `[]`, e.g. `[1 | 2]`.
    ImproperList {
        /// The elements before the tail (at least one).
        elements: Vec<Term>,
        /// The tail, never a list.
        tail: Box<Term>,
    },
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, its pairs in wire order (keys are distinct).
    Map(Vec<(Term, Term)>),
    /// A pid, port, reference or fun, kept as its encoded bytes.
    Opaque(Opaque),
}

impl Term {
    /// An atom term.
    pub fn atom(text: impl Into<String>) -> Term {
        Term::Atom(text.into())
    }

    /// A binary term from UTF-8 text.
    pub fn binary(text: impl AsRef<[u8]>) -> Term {
        Term::Binary(text.as_ref().to_vec())
    }

    /// The atom's text, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::Binary(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Look a key up in a map term (first match; keys are distinct).
    pub fn map_get(&self, key: &Term) -> Option<&Term> {
        match self {
            Term::Map(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the term's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Term::Integer(_) | Term::BigInteger(_) => "integer",
            Term::Float(_) => "float",
            Term::Atom(_) => "atom",
            Term::Binary(_) => "binary",
            Term::BitBinary { .. } => "bitstring",
            Term::List(_) | Term::ImproperList { .. } => "list",
            Term::Tuple(_) => "tuple",
            Term::Map(_) => "map",
            Term::Opaque(opaque) => opaque.kind.name(),
        }
    }

    /// An integer term from any `i128`, choosing the small or big form.
    pub fn from_i128(value: i128) -> Term {
        match i64::try_from(value) {
            Ok(small) => Term::Integer(small),
            Err(_) => Term::BigInteger(BigInt::from_i128(value)),
        }
    }
}

/// What an [`Opaque`] term is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaqueKind {
    /// A process identifier.
    Pid,
    /// A port identifier.
    Port,
    /// A reference.
    Reference,
    /// A fun (closure or `fun M:F/A`).
    Fun,
}

impl OpaqueKind {
    /// The Erlang name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            OpaqueKind::Pid => "pid",
            OpaqueKind::Port => "port",
            OpaqueKind::Reference => "reference",
            OpaqueKind::Fun => "fun",
        }
    }

    /// Rank in Erlang's term order (`reference < fun < port < pid`).
    fn rank(self) -> u8 {
        match self {
            OpaqueKind::Reference => 2,
            OpaqueKind::Fun => 3,
            OpaqueKind::Port => 4,
            OpaqueKind::Pid => 5,
        }
    }
}

/// A pid, port, reference or fun: its kind and its encoded bytes (tag included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque {
    /// What it is.
    pub kind: OpaqueKind,
    /// The bytes of its encoding, starting with its tag.
    pub encoded: Vec<u8>,
}

/// An integer outside the `i64` range: a sign and a little-endian magnitude
/// without trailing zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigInt {
    negative: bool,
    magnitude: Vec<u8>,
}

impl BigInt {
    /// Build from a sign and little-endian magnitude bytes (trailing zeros are dropped;
    /// zero is never negative).
    pub fn new(negative: bool, magnitude_le: &[u8]) -> BigInt {
        let mut magnitude = magnitude_le.to_vec();
        while magnitude.last() == Some(&0) {
            magnitude.pop();
        }
        BigInt {
            negative: negative && !magnitude.is_empty(),
            magnitude,
        }
    }

    /// Build from an `i128`.
    pub fn from_i128(value: i128) -> BigInt {
        BigInt::new(value < 0, &value.unsigned_abs().to_le_bytes())
    }

    /// True for a negative number.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The little-endian magnitude bytes.
    pub fn magnitude(&self) -> &[u8] {
        &self.magnitude
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        i64::try_from(self.to_i128()?).ok()
    }

    /// The value as a `u64`, if it fits.
    pub fn to_u64(&self) -> Option<u64> {
        u64::try_from(self.to_i128()?).ok()
    }

    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut buf = [0u8; 16];
        for (slot, byte) in buf.iter_mut().zip(&self.magnitude) {
            *slot = *byte;
        }
        let magnitude = u128::from_le_bytes(buf);
        if self.negative {
            0i128.checked_sub_unsigned(magnitude)
        } else {
            i128::try_from(magnitude).ok()
        }
    }

    /// The exact decimal digits (with a leading `-` when negative).
    ///
    /// Quadratic in the length, which the decoder bounds with
    /// [`Limits::max_big_bytes`](crate::Limits::max_big_bytes).
    pub fn to_decimal(&self) -> String {
        // Repeatedly divide the big-endian magnitude by 10^19 (fits a u64).
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut words: Vec<u32> = self
            .magnitude
            .chunks(4)
            .rev()
            .map(|chunk| {
                let mut buf = [0u8; 4];
                for (slot, byte) in buf.iter_mut().zip(chunk) {
                    *slot = *byte;
                }
                u32::from_le_bytes(buf)
            })
            .collect();
        let mut chunks: Vec<u64> = Vec::new();
        while words.iter().any(|w| *w != 0) {
            let mut rem: u128 = 0;
            for word in words.iter_mut() {
                let cur = (rem << 32) | u128::from(*word);
                *word = u32::try_from(cur / u128::from(CHUNK)).unwrap_or(u32::MAX);
                rem = cur % u128::from(CHUNK);
            }
            chunks.push(u64::try_from(rem).unwrap_or(0));
            while words.first() == Some(&0) {
                words.remove(0);
            }
        }
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        match chunks.split_last() {
            None => out.push('0'),
            Some((most, rest)) => {
                out.push_str(&most.to_string());
                for chunk in rest.iter().rev() {
                    out.push_str(&format!("{chunk:019}"));
                }
            }
        }
        out
    }

    fn cmp_value(&self, other: &BigInt) -> Ordering {
        let magnitude_order = self
            .magnitude
            .len()
            .cmp(&other.magnitude.len())
            .then_with(|| {
                self.magnitude
                    .iter()
                    .rev()
                    .cmp(other.magnitude.iter().rev())
            });
        match (self.negative, other.negative) {
            (false, false) => magnitude_order,
            (true, true) => magnitude_order.reverse(),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
        }
    }
}

/// Erlang's term order, made total: `number < atom < reference < fun < port <
/// pid < tuple < map < [] < list < bitstring`; an integer sorts before a float
/// of the same value (so `1` and `1.0` are distinct map keys, as in Erlang).
///
/// Used to write small maps' keys in the order OTP writes them, and to find
/// duplicate keys. Opaque terms of one kind compare by their encoded bytes.
pub fn term_cmp(a: &Term, b: &Term) -> Ordering {
    let class = class_rank(a).cmp(&class_rank(b));
    if class != Ordering::Equal {
        return class;
    }
    match (a, b) {
        (Term::Atom(x), Term::Atom(y)) => x.cmp(y),
        (Term::Opaque(x), Term::Opaque(y)) => x.encoded.cmp(&y.encoded),
        (Term::Tuple(x), Term::Tuple(y)) => x.len().cmp(&y.len()).then_with(|| seq_cmp(x, y)),
        (Term::Map(x), Term::Map(y)) => x.len().cmp(&y.len()).then_with(|| map_cmp(x, y)),
        (Term::List(_) | Term::ImproperList { .. }, Term::List(_) | Term::ImproperList { .. }) => {
            list_cmp(a, b)
        }
        (Term::Binary(_) | Term::BitBinary { .. }, Term::Binary(_) | Term::BitBinary { .. }) => {
            bits_cmp(a, b)
        }
        _ => number_cmp(a, b),
    }
}

fn class_rank(term: &Term) -> u8 {
    match term {
        Term::Integer(_) | Term::BigInteger(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Opaque(opaque) => opaque.kind.rank(),
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(elements) if elements.is_empty() => 8,
        Term::List(_) | Term::ImproperList { .. } => 9,
        Term::Binary(_) | Term::BitBinary { .. } => 10,
    }
}

fn seq_cmp(x: &[Term], y: &[Term]) -> Ordering {
    for (a, b) in x.iter().zip(y) {
        let order = term_cmp(a, b);
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len())
}

fn map_cmp(x: &[(Term, Term)], y: &[(Term, Term)]) -> Ordering {
    fn sorted(pairs: &[(Term, Term)]) -> Vec<&(Term, Term)> {
        let mut refs: Vec<&(Term, Term)> = pairs.iter().collect();
        refs.sort_by(|p, q| term_cmp(&p.0, &q.0));
        refs
    }
    let (x, y) = (sorted(x), sorted(y));
    for (p, q) in x.iter().zip(&y) {
        let order = term_cmp(&p.0, &q.0);
        if order != Ordering::Equal {
            return order;
        }
    }
    for (p, q) in x.iter().zip(&y) {
        let order = term_cmp(&p.1, &q.1);
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn list_cmp(a: &Term, b: &Term) -> Ordering {
    let parts = |t: &'_ Term| -> (Vec<Term>, Option<Term>) {
        match t {
            Term::List(elements) => (elements.clone(), None),
            Term::ImproperList { elements, tail } => (elements.clone(), Some((**tail).clone())),
            _ => (Vec::new(), None),
        }
    };
    let ((xe, xt), (ye, yt)) = (parts(a), parts(b));
    for (p, q) in xe.iter().zip(&ye) {
        let order = term_cmp(p, q);
        if order != Ordering::Equal {
            return order;
        }
    }
    // After the common prefix: compare what follows (the next element or the tail).
    let rest = |elements: &[Term], tail: &Option<Term>, at: usize| -> Term {
        match elements.get(at..) {
            Some(more) if !more.is_empty() => match tail {
                Some(t) => Term::ImproperList {
                    elements: more.to_vec(),
                    tail: Box::new(t.clone()),
                },
                None => Term::List(more.to_vec()),
            },
            _ => tail.clone().unwrap_or(Term::List(Vec::new())),
        }
    };
    let common = xe.len().min(ye.len());
    let (x_rest, y_rest) = (rest(&xe, &xt, common), rest(&ye, &yt, common));
    if x_rest == Term::List(Vec::new()) && y_rest == Term::List(Vec::new()) {
        return Ordering::Equal;
    }
    term_cmp(&x_rest, &y_rest)
}

fn bits_cmp(a: &Term, b: &Term) -> Ordering {
    let parts = |t: &'_ Term| -> (Vec<u8>, u8) {
        match t {
            Term::Binary(bytes) => (bytes.clone(), 8),
            Term::BitBinary { bytes, bits } => (bytes.clone(), *bits),
            _ => (Vec::new(), 8),
        }
    };
    let ((xb, xbits), (yb, ybits)) = (parts(a), parts(b));
    xb.cmp(&yb).then(xbits.cmp(&ybits))
}

fn number_cmp(a: &Term, b: &Term) -> Ordering {
    match (a, b) {
        (Term::Integer(x), Term::Integer(y)) => x.cmp(y),
        (Term::BigInteger(x), Term::BigInteger(y)) => x.cmp_value(y),
        (Term::Integer(x), Term::BigInteger(y)) => BigInt::from_i128(i128::from(*x)).cmp_value(y),
        (Term::BigInteger(x), Term::Integer(y)) => x.cmp_value(&BigInt::from_i128(i128::from(*y))),
        (Term::Float(x), Term::Float(y)) => x.total_cmp(y),
        (Term::Float(x), other) => float_int_cmp(*x, other),
        (other, Term::Float(y)) => float_int_cmp(*y, other).reverse(),
        _ => Ordering::Equal,
    }
}

/// Compare a float with an integer term; equal values put the integer first.
fn float_int_cmp(float: f64, int: &Term) -> Ordering {
    let as_f64 = match int {
        Term::Integer(i) => *i as f64,
        Term::BigInteger(big) => {
            let magnitude = big
                .magnitude()
                .iter()
                .rev()
                .fold(0f64, |acc, byte| acc * 256.0 + f64::from(*byte));
            if big.is_negative() {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => 0.0,
    };
    float.total_cmp(&as_f64).then(Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_int_decimal_is_exact() {
        let two_70 = BigInt::new(false, &[0, 0, 0, 0, 0, 0, 0, 0, 0x40]);
        assert_eq!(two_70.to_decimal(), "1180591620717411303424");
        let neg = BigInt::from_i128(-12_345_678_901_234_567_890_123_456_789);
        assert_eq!(neg.to_decimal(), "-12345678901234567890123456789");
        assert_eq!(BigInt::new(true, &[0, 0]).to_decimal(), "0");
        assert_eq!(
            BigInt::from_i128(10_000_000_000_000_000_000).to_decimal(),
            "10000000000000000000"
        );
        assert_eq!(BigInt::from_i128(i128::MIN).to_i128(), Some(i128::MIN));
    }

    #[test]
    fn term_order_matches_erlang_classes() {
        let sorted = [
            Term::Integer(1),
            Term::Float(1.0),
            Term::atom("b"),
            Term::Tuple(vec![]),
            Term::Map(vec![]),
            Term::List(vec![]),
            Term::List(vec![Term::Integer(1)]),
            Term::binary("a"),
        ];
        for pair in sorted.windows(2) {
            if let [a, b] = pair {
                assert_eq!(term_cmp(a, b), Ordering::Less, "{a:?} < {b:?}");
                assert_eq!(term_cmp(b, a), Ordering::Greater, "{b:?} > {a:?}");
            }
        }
        assert_eq!(
            term_cmp(&Term::binary("ab"), &Term::binary("b")),
            Ordering::Less
        );
        assert_eq!(
            term_cmp(&Term::binary("a"), &Term::binary("ab")),
            Ordering::Less
        );
    }
}
