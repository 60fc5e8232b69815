//! fawkes's bytes against a real Erlang runtime (`erl` from Debian's
//! `erlang-base`): what fawkes publishes is, for `binary_to_term`, exactly the
//! term Phoenix would send, and what OTP writes decodes and re-encodes
//! byte for byte. Nothing is skipped: without `erl` the test fails and says
//! how to install it.

mod support;

use std::process::Command;

use fawkes_etf::pubsub_redis::{encode_broadcast, Mode, PayloadRef};
use fawkes_etf::{decode, encode, AtomEncoding, EncodeOptions, OpaqueKind, Term};
use serde_json::{json, Value};
use support::hex;

/// Run an Erlang program with `erl -noshell -eval` and return its stdout.
fn run_erl(program: &str) -> String {
    let output = Command::new("erl")
        .args(["-noshell", "-eval", program, "-s", "init", "stop"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `erl` ({e}): install it with `apt-get install -y erlang-base`")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "erl failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// An Erlang binary literal holding exactly these bytes.
fn erl_bin(bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("<<{}>>", list.join(","))
}

/// The term Phoenix's `Endpoint.broadcast` (or `direct_broadcast`) builds,
/// written by hand in Erlang syntax.
fn phoenix_term(mode: &str, node: &str, topic: &str, event: &str, payload: &str) -> String {
    format!(
        "{{3, {mode}, {node}, {t}, #{{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', \
         event => {e}, payload => {payload}, topic => {t}}}, 'Elixir.Phoenix.Channel.Server'}}",
        t = erl_bin(topic.as_bytes()),
        e = erl_bin(event.as_bytes()),
    )
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expected: String,
    /// `term_to_binary(Expected, Opts)` must equal the bytes (None: compare terms only).
    same_bytes_with: Option<&'static str>,
}

fn publish(
    mode: Mode,
    topic: &str,
    event: &str,
    payload: PayloadRef<'_>,
    options: EncodeOptions,
) -> Vec<u8> {
    encode_broadcast(mode, "fawkes_b", topic, event, payload, &options).unwrap()
}

fn json_case(name: &'static str, payload: Value, expected_payload: &str) -> Case {
    Case {
        name,
        bytes: publish(
            Mode::Except,
            "room:x",
            "http_evt",
            PayloadRef::Json(&payload),
            EncodeOptions::default(),
        ),
        expected: phoenix_term("except", "fawkes_b", "room:x", "http_evt", expected_payload),
        same_bytes_with: Some("[]"),
    }
}

#[test]
fn fawkes_broadcasts_are_the_terms_phoenix_sends() {
    let unicode = "héllo wörld ✓ 日本語 🎉";
    let pad = "x".repeat(400);
    let many: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
    let many_expected: Vec<String> = (0..40)
        .map(|i| format!("{} => {i}", erl_bin(format!("k{i}").as_bytes())))
        .collect();
    let cases = vec![
        json_case(
            "string_keys",
            json!({"greeting": "hi", "k": "v"}),
            r#"#{<<"greeting">> => <<"hi">>, <<"k">> => <<"v">>}"#,
        ),
        json_case(
            "nested",
            json!({"a": {"b": [1, {"c": [true, false, null]}]}, "l": [[1, 2], [3], []]}),
            r#"#{<<"a">> => #{<<"b">> => [1, #{<<"c">> => [true, false, nil]}]}, <<"l">> => [[1, 2], [3], []]}"#,
        ),
        json_case(
            "ints",
            json!({"big": 12345678901234567890u64, "i": 42, "i32": 2147483648i64, "neg": -7, "zero": 0, "min": i64::MIN, "m300": -300}),
            r#"#{<<"big">> => 12345678901234567890, <<"i">> => 42, <<"i32">> => 2147483648, <<"neg">> => -7, <<"zero">> => 0, <<"min">> => -9223372036854775808, <<"m300">> => -300}"#,
        ),
        json_case(
            "floats",
            json!({"f": 3.25, "neg": -2.5, "tiny": 1.0e-10, "z": 0.0, "third": 1.0 / 3.0}),
            r#"#{<<"f">> => 3.25, <<"neg">> => -2.5, <<"tiny">> => 1.0e-10, <<"z">> => 0.0, <<"third">> => 1/3}"#,
        ),
        json_case(
            "unicode",
            json!({"u": unicode}),
            &format!("#{{<<\"u\">> => {}}}", erl_bin(unicode.as_bytes())),
        ),
        json_case(
            "null_and_booleans",
            json!({"n": null, "t": true, "f": false}),
            r#"#{<<"n">> => nil, <<"t">> => true, <<"f">> => false}"#,
        ),
        json_case(
            "top_level_list",
            json!([1, "a", [256]]),
            r#"[1, <<"a">>, [256]]"#,
        ),
        Case {
            name: "disconnect",
            bytes: publish(
                Mode::Except,
                "users_socket:bob",
                "disconnect",
                PayloadRef::Json(&json!({})),
                EncodeOptions::default(),
            ),
            expected: phoenix_term(
                "except",
                "fawkes_b",
                "users_socket:bob",
                "disconnect",
                "#{}",
            ),
            same_bytes_with: Some("[]"),
        },
        Case {
            name: "binary_payload",
            bytes: publish(
                Mode::Except,
                "room:x",
                "bin",
                PayloadRef::Binary(&[0, 1, 254, 255, 98, 105, 110]),
                EncodeOptions::default(),
            ),
            expected: phoenix_term(
                "except",
                "fawkes_b",
                "room:x",
                "bin",
                "{binary, <<0, 1, 254, 255, 98, 105, 110>>}",
            ),
            same_bytes_with: Some("[]"),
        },
        Case {
            name: "only",
            bytes: encode_broadcast(
                Mode::Only,
                "phx_a",
                "room:x",
                "e",
                PayloadRef::Json(&json!({"n": 5})),
                &EncodeOptions::default(),
            )
            .unwrap(),
            expected: phoenix_term("only", "phx_a", "room:x", "e", r#"#{<<"n">> => 5}"#),
            same_bytes_with: Some("[]"),
        },
        Case {
            name: "utf8_atoms_as_otp26",
            bytes: publish(
                Mode::Except,
                "room:x",
                "e",
                PayloadRef::Json(&json!({"n": 11})),
                EncodeOptions {
                    atoms: AtomEncoding::Utf8,
                    compression: None,
                },
            ),
            expected: phoenix_term("except", "fawkes_b", "room:x", "e", r#"#{<<"n">> => 11}"#),
            same_bytes_with: Some("[{minor_version, 2}]"),
        },
        Case {
            name: "compressed_level_6",
            bytes: publish(
                Mode::Except,
                "room:x",
                "e",
                PayloadRef::Json(&json!({"n": 10, "pad": pad})),
                EncodeOptions {
                    atoms: AtomEncoding::Latin1,
                    compression: Some(6),
                },
            ),
            expected: phoenix_term(
                "except",
                "fawkes_b",
                "room:x",
                "e",
                &format!(
                    "#{{<<\"n\">> => 10, <<\"pad\">> => {}}}",
                    erl_bin(pad.as_bytes())
                ),
            ),
            same_bytes_with: None,
        },
        Case {
            name: "map_of_40_keys",
            bytes: publish(
                Mode::Except,
                "room:x",
                "e",
                PayloadRef::Json(&Value::Object(many)),
                EncodeOptions::default(),
            ),
            expected: phoenix_term(
                "except",
                "fawkes_b",
                "room:x",
                "e",
                &format!("#{{{}}}", many_expected.join(", ")),
            ),
            same_bytes_with: None,
        },
    ];
    assert_eq!(cases[11].bytes[1], 80, "the compressed case is compressed");
    let dir = tempdir();
    let mut program = String::new();
    for case in &cases {
        let path = dir.join(format!("{}.bin", case.name));
        std::fs::write(&path, &case.bytes).unwrap();
        let bytes_check = match case.same_bytes_with {
            Some(opts) => format!("term_to_binary(Expected, {opts}) =:= Bin"),
            None => "true".to_owned(),
        };
        program.push_str(&format!(
            "fun() -> {{ok, Bin}} = file:read_file(\"{path}\"), Expected = {expected}, \
             Got = binary_to_term(Bin), \
             case {{Got =:= Expected, {bytes_check}}} of \
               {{true, true}} -> io:format(\"PASS {name}~n\"); \
               Other -> io:format(\"FAIL {name} ~p got ~p~n\", [Other, Got]) \
             end end(),\n",
            path = path.display(),
            expected = case.expected,
            name = case.name,
        ));
    }
    program.push_str("ok.");
    let out = run_erl(&program);
    let passes = out.lines().filter(|l| l.starts_with("PASS ")).count();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(passes, cases.len(), "erl said:\n{out}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fawkes-etf-erl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Terms written by OTP's term_to_binary: decoded to what they are, and
/// re-encoded by fawkes to the same bytes.
#[test]
fn otp_terms_decode_and_reencode_byte_for_byte() {
    let program = r#"
        Port = hd(erlang:ports()),
        Terms = [
          {pid, self(), []},
          {reference, make_ref(), []},
          {closure, fun() -> ok end, []},
          {export, fun erlang:abs/1, []},
          {port, Port, []},
          {two_70, 1 bsl 70, []},
          {minus_two_70, -(1 bsl 70), []},
          {two_4000, 1 bsl 4000, []},
          {improper, [1 | 2], []},
          {bits, <<1:3>>, []},
          {tuple, {1, {}, <<"x">>, [a, "bc"]}, []},
          {big_tuple, list_to_tuple(lists:seq(1, 300)), []},
          {float, -0.1, []},
          {utf8_atom, 'héllo', [{minor_version, 2}]},
          {latin1_atom, 'héllo', []},
          {big_map, maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 40)]), []},
          {mixed_keys, #{1 => a, 1.0 => b, c => 2, <<"d">> => 3, {e} => 4, [f] => 5}, []},
          {long_list, lists:seq(1, 70000), []},
          {compressed, lists:duplicate(200, <<"abc">>), [{compressed, 6}]}
        ],
        lists:foreach(fun({Name, T, Opts}) ->
            Text = case is_integer(T) of true -> integer_to_list(T); false -> "-" end,
            io:format("~s ~s ~s~n", [Name, binary:encode_hex(term_to_binary(T, Opts)), Text])
          end, Terms).
    "#;
    let out = run_erl(program);
    let mut seen = 0;
    for line in out.lines() {
        let mut parts = line.split(' ');
        let (Some(name), Some(hex_text), Some(int_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let bytes = hex(hex_text);
        let term = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kind = match &term {
            Term::Opaque(opaque) => Some(opaque.kind),
            _ => None,
        };
        match name {
            "pid" => assert_eq!(kind, Some(OpaqueKind::Pid)),
            "reference" => assert_eq!(kind, Some(OpaqueKind::Reference)),
            "closure" | "export" => assert_eq!(kind, Some(OpaqueKind::Fun)),
            "port" => assert_eq!(kind, Some(OpaqueKind::Port)),
            "two_70" | "minus_two_70" | "two_4000" => match &term {
                Term::BigInteger(big) => assert_eq!(big.to_decimal(), int_text, "{name}"),
                other => panic!("{name}: {other:?}"),
            },
            "improper" => assert!(matches!(term, Term::ImproperList { .. })),
            "bits" => assert_eq!(
                term,
                Term::BitBinary {
                    bytes: vec![0b0010_0000],
                    bits: 3
                }
            ),
            "float" => assert_eq!(term, Term::Float(-0.1)),
            "utf8_atom" | "latin1_atom" => assert_eq!(term, Term::atom("héllo")),
            "long_list" => assert!(matches!(&term, Term::List(items) if items.len() == 70000)),
            "compressed" => assert_eq!(term, Term::List(vec![Term::binary("abc"); 200])),
            _ => {}
        }
        if name != "compressed" {
            let atoms = if name == "utf8_atom" {
                AtomEncoding::Utf8
            } else {
                AtomEncoding::Latin1
            };
            let again = encode(
                &term,
                &EncodeOptions {
                    atoms,
                    compression: None,
                },
            )
            .unwrap();
            assert_eq!(again, bytes, "{name}: re-encoded bytes");
        }
        seen += 1;
    }
    assert_eq!(seen, 19, "erl said:\n{out}");
    let _ = std::fs::remove_dir_all(tempdir());
}
