//! A fast path for reading presence frames in the load generator: a byte
//! scanner for the shape fawkes and Phoenix send (`{key: {"metas": [{..,
//! "phx_ref": ".."}]}}`), keeping only keys and `phx_ref`s as ids.
//!
//! Why: in a presence storm every client reads every other client's join,
//! about N² entries in all, and on a machine the servers share the
//! generator's parsing decides how soon the storm ends. Anything the
//! scanner does not expect (an escaped key or ref, a key or ref that is
//! not a string, malformed JSON) makes it give up with `None`, and the
//! caller parses the frame with serde instead, so the result never
//! depends on which path read it.

use crate::presence_model::{id, Presences, Refs};

/// A cursor over a frame's bytes.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    /// The next non-blank byte, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// The next non-blank byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string without escapes, as its raw text (`None` on an escape:
    /// the caller falls back to serde, which unescapes).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        let end = start + memchr::memchr2(b'"', b'\\', &self.b[start..])?;
        if self.b[end] == b'\\' {
            return None;
        }
        self.i = end + 1;
        std::str::from_utf8(&self.b[start..end]).ok()
    }

    /// Skip a string (escapes allowed), the opening quote consumed.
    fn skip_string_body(&mut self) -> Option<()> {
        loop {
            let at = self.i + memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
            if self.b[at] == b'\\' {
                self.i = at + 2;
                if self.i > self.b.len() {
                    return None;
                }
            } else {
                self.i = at + 1;
                return Some(());
            }
        }
    }

    /// Skip one JSON value of any kind.
    fn skip_value(&mut self) -> Option<()> {
        match self.next()? {
            b'"' => self.skip_string_body(),
            b'{' | b'[' => {
                let mut depth = 1usize;
                while depth > 0 {
                    let at = self.i
                        + self.b[self.i..]
                            .iter()
                            .position(|c| matches!(c, b'"' | b'{' | b'[' | b'}' | b']'))?;
                    self.i = at + 1;
                    match self.b[at] {
                        b'"' => self.skip_string_body()?,
                        b'{' | b'[' => depth += 1,
                        _ => depth -= 1,
                    }
                }
                Some(())
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                while let Some(c) = self.b.get(self.i) {
                    if matches!(c, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// `{..}` calling `field` for each key with the cursor on its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.plain_string()?;
            self.expect(b':')?;
            field(self, key)?;
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// `[..]` calling `item` with the cursor on each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A `null` in place of a value (Phoenix never sends one here, but
    /// serde's path treats it as "absent").
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            return true;
        }
        false
    }

    /// `{key: {"metas": [..]}, ..}` as (key, refs) pairs in payload order.
    /// A repeated `metas` or `phx_ref` is left to serde (which refuses it).
    fn presences(&mut self) -> Option<Presences> {
        let mut out = Presences::new();
        self.object(|s, key| {
            let mut refs = Refs::new();
            let mut seen_metas = false;
            s.object(|s, field| {
                if field != "metas" {
                    return s.skip_value();
                }
                if std::mem::replace(&mut seen_metas, true) {
                    return None;
                }
                s.array(|s| {
                    let mut phx_ref: Option<Option<&str>> = None;
                    s.object(|s, name| {
                        if name != "phx_ref" {
                            return s.skip_value();
                        }
                        if phx_ref.is_some() {
                            return None;
                        }
                        phx_ref = Some(if s.null() {
                            None
                        } else {
                            Some(s.plain_string()?)
                        });
                        Some(())
                    })?;
                    refs.push(id(phx_ref.flatten().unwrap_or_default()));
                    Some(())
                })
            })?;
            out.push((id(key), refs));
            Some(())
        })?;
        Some(out)
    }
}

/// The payload of a V2 frame `[join_ref, ref, topic, event, payload]` when
/// `event` is `want`, with the cursor on the payload; `Some(None)` when the
/// event is another one.
fn payload_of<'a>(text: &'a str, want: &str) -> Option<Option<Scan<'a>>> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    s.expect(b'[')?;
    for _ in 0..3 {
        s.skip_value()?;
        s.expect(b',')?;
    }
    let event = s.plain_string()?;
    s.expect(b',')?;
    Some((event == want).then_some(s))
}

/// The ending of a frame after its payload: `]` and nothing else.
fn at_end(s: &mut Scan<'_>) -> Option<()> {
    s.expect(b']')?;
    s.ws();
    (s.i == s.b.len()).then_some(())
}

/// `presence_state`: `Some(Some(list))`, `Some(None)` for another event,
/// `None` when the scanner cannot read it (use serde).
pub(crate) fn state(text: &str) -> Option<Option<Presences>> {
    let Some(mut s) = payload_of(text, "presence_state")? else {
        return Some(None);
    };
    let list = s.presences()?;
    at_end(&mut s)?;
    Some(Some(list))
}

/// `presence_diff`: `Some(Some((joins, leaves)))`, `Some(None)` for another
/// event, `None` when the scanner cannot read it (use serde).
pub(crate) fn diff(text: &str) -> Option<Option<(Presences, Presences)>> {
    let Some(mut s) = payload_of(text, "presence_diff")? else {
        return Some(None);
    };
    let mut joins = None;
    let mut leaves = None;
    s.object(|s, field| match field {
        // A repeated field is left to serde (which refuses it).
        "joins" if joins.is_none() => {
            joins = Some(s.presences()?);
            Some(())
        }
        "leaves" if leaves.is_none() => {
            leaves = Some(s.presences()?);
            Some(())
        }
        "joins" | "leaves" => None,
        _ => s.skip_value(),
    })?;
    let (joins, leaves) = (joins.unwrap_or_default(), leaves.unwrap_or_default());
    at_end(&mut s)?;
    Some(Some((joins, leaves)))
}

#[cfg(test)]
mod tests {
    use crate::presence_model::{parse_frame_with_serde, PresenceFrame};

    /// What a frame reads as: `None`, a state, or a diff, as id lists.
    fn read(frame: Option<PresenceFrame>) -> String {
        match frame {
            None => "none".into(),
            Some(PresenceFrame::State(s)) => format!("state {s:?}"),
            Some(PresenceFrame::Diff(j, l)) => format!("diff {j:?} {l:?}"),
        }
    }

    fn fast(text: &str, is_state: bool) -> Option<Option<PresenceFrame>> {
        if is_state {
            super::state(text).map(|r| r.map(PresenceFrame::State))
        } else {
            super::diff(text).map(|r| r.map(|(j, l)| PresenceFrame::Diff(j, l)))
        }
    }

    /// The scanner reads `text` as serde does, or gives up.
    fn same(text: &str, is_state: bool) -> bool {
        let slow = read(parse_frame_with_serde(text, is_state));
        match fast(text, is_state) {
            Some(frame) => {
                assert_eq!(read(frame), slow, "{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_usual_frames_are_read_by_the_scanner_as_serde_reads_them() {
        let usual = [
            (
                r#"[null,null,"room:1","presence_diff",{"joins":{"u1":{"metas":[{"online_at":1764541234567,"phx_ref":"GIs8abcdEfg="}]}},"leaves":{}}]"#,
                false,
            ),
            (
                r#"["3","3","room:1","presence_state",{"u1":{"metas":[{"phx_ref":"a","name":"x"},{"phx_ref":"b"}]},"u2":{"metas":[]}}]"#,
                true,
            ),
            (r#"[ "3" , "3" , "room:1" , "presence_state" , { } ]"#, true),
            (
                r#"[null,null,"t","presence_diff",{"leaves":{"k":{"metas":[{"phx_ref":null}]}},"joins":{},"x":[1,{"a":"]}"}]}]"#,
                false,
            ),
            (
                r#"[null,null,"t","presence_diff",{"joins":{"k":{"extra":{"n":[1,2,{"s":"}\""}]},"metas":[{"nested":{"phx_ref":"no"},"phx_ref":"yes","t":true,"f":-1.5e3}]}}}]"#,
                false,
            ),
            (r#"[null,null,"t","presence_diff",{}]"#, false),
            (r#"[null,null,"t","other",{"joins":{}}]"#, false),
            (r#"[null,null,"t","presence_state",{}]"#, false),
        ];
        for (text, is_state) in usual {
            assert!(same(text, is_state), "the scanner gave up on {text}");
        }
    }

    #[test]
    fn what_the_scanner_does_not_expect_goes_to_serde() {
        let unusual = [
            // Escapes in a key or a ref: serde unescapes them.
            (
                r#"[null,null,"t","presence_state",{"a\"b":{"metas":[{"phx_ref":"r"}]}}]"#,
                true,
            ),
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":[{"phx_ref":"r\u0041"}]}}]"#,
                true,
            ),
            // Shapes serde refuses.
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":[{"phx_ref":1}]}}]"#,
                true,
            ),
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":null}}]"#,
                true,
            ),
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":[],"metas":[]}}]"#,
                true,
            ),
            (
                r#"[null,null,"t","presence_diff",{"joins":{},"joins":{}}]"#,
                false,
            ),
            (r#"[null,null,"t","presence_diff",{"joins":null}]"#, false),
            (r#"[null,null,"t","presence_state",{}"#, true),
            (r#"[null,null,"t","presence_state",{},1]"#, true),
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":[{"phx_ref":"r"}]}]"#,
                true,
            ),
            (
                r#"[null,null,"t","presence_state",{"a":{"metas":[{"phx_ref":"r"}]}}"#,
                true,
            ),
            ("", true),
            ("[", false),
            ("[\"\\", false),
        ];
        for (text, is_state) in unusual {
            // Whatever the scanner says, it must agree with serde.
            same(text, is_state);
            // And parse_frame (scanner first) answers as serde does.
            assert_eq!(
                read(crate::presence_model::parse_frame(text, is_state)),
                read(parse_frame_with_serde(text, is_state)),
                "{text}"
            );
        }
    }

    #[test]
    fn generated_frames_read_the_same_either_way() {
        // A small deterministic generator: keys, refs, extra fields with
        // brackets and quotes inside strings, and now and then an escape.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let strings = ["a", "b]", "{c}", "d\\\"e", "f,g", "", "h\\\\", "\\u00e9"];
        let mut scanned = 0;
        for _ in 0..2000 {
            let mut list = String::from("{");
            for k in 0..next(5) {
                if k > 0 {
                    list.push(',');
                }
                let key = strings[next(strings.len() as u64) as usize];
                list.push_str(&format!("\"{key}{k}\":{{"));
                if next(3) == 0 {
                    list.push_str(&format!("\"x\":[\"{}\",{{}}],", strings[next(8) as usize]));
                }
                list.push_str("\"metas\":[");
                for m in 0..next(3) {
                    if m > 0 {
                        list.push(',');
                    }
                    list.push_str(&format!(
                        "{{\"online_at\":{},\"phx_ref\":\"{}\",\"s\":\"{}\"}}",
                        next(1 << 40),
                        strings[next(8) as usize],
                        strings[next(8) as usize]
                    ));
                }
                list.push_str("]}");
            }
            list.push('}');
            let state = format!("[\"1\",\"2\",\"room:x\",\"presence_state\",{list}]");
            let diff = format!(
                "[null,null,\"room:x\",\"presence_diff\",{{\"joins\":{list},\"leaves\":{list}}}]"
            );
            scanned += usize::from(same(&state, true)) + usize::from(same(&diff, false));
        }
        assert!(scanned > 1000, "the scanner read only {scanned} of 4000");
    }
}
