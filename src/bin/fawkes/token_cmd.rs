//! `fawkes token`: verify, decrypt, sign and encrypt Phoenix.Tokens from the
//! command line, for people debugging tokens between fawkes and an Elixir app.
//!
//! `verify`/`decrypt` print one JSON line, `{"ok": <data>}` or
//! `{"error": "invalid" | "expired" | "missing"}` (a missing TOKEN argument is
//! Phoenix's `nil` token), and exit 0 only for `ok`. Data that verifies but has
//! no JSON form (a pid, a tuple...) prints `{"error": "no_json_form", "reason": ...}`.
//! `sign`/`encrypt` print the token.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use fawkes::token::{MaxAge, SignOptions, TokenData, TokenError, TokenKey, VerifyOptions};
use serde_json::{json, Value};

/// `fawkes token` arguments.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Verify a signed token (Phoenix.Token.verify/4).
    Verify(OpenArgs),
    /// Decrypt an encrypted token (Phoenix.Token.decrypt/4).
    Decrypt(OpenArgs),
    /// Sign JSON data (Phoenix.Token.sign/4), HS256.
    Sign(MintArgs),
    /// Encrypt JSON data (Phoenix.Token.encrypt/4), XChaCha20-Poly1305.
    Encrypt(MintArgs),
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The Elixir app's secret_key_base.
    #[arg(long)]
    secret_key_base: String,
    /// The salt given to Phoenix.Token (e.g. "user socket").
    #[arg(long)]
    salt: String,
}

#[derive(Debug, Args)]
struct OpenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Max age in seconds, or `infinity` [default: the one stored in the token].
    #[arg(long, value_parser = parse_max_age)]
    max_age: Option<MaxAge>,
    /// The current time in ms since the Unix epoch [default: now].
    #[arg(long, allow_hyphen_values = true)]
    now_ms: Option<i64>,
    /// The token (absent: a missing token).
    token: Option<String>,
}

#[derive(Debug, Args)]
struct MintArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Max age stored in the token, in seconds or `infinity` [default: 86400].
    #[arg(long, value_parser = parse_max_age)]
    max_age: Option<MaxAge>,
    /// Signing time in ms since the Unix epoch [default: now].
    #[arg(long, allow_hyphen_values = true)]
    signed_at_ms: Option<i64>,
    /// The data, as JSON.
    data_json: String,
}

fn parse_max_age(text: &str) -> Result<MaxAge, String> {
    MaxAge::parse(text)
        .ok_or_else(|| format!("{text:?} is neither a number of seconds nor `infinity`"))
}

/// Run `fawkes token ...`.
pub(crate) fn run(args: TokenArgs) -> ExitCode {
    match args.action {
        TokenAction::Verify(open) => print_opened(&open, TokenKey::verify),
        TokenAction::Decrypt(open) => print_opened(&open, TokenKey::decrypt),
        TokenAction::Sign(mint) => mint_token(&mint, false),
        TokenAction::Encrypt(mint) => mint_token(&mint, true),
    }
}

type Open = fn(&TokenKey, Option<&str>, &VerifyOptions) -> Result<TokenData, TokenError>;

fn print_opened(args: &OpenArgs, open: Open) -> ExitCode {
    let key = TokenKey::derive(
        args.key.secret_key_base.as_bytes(),
        args.key.salt.as_bytes(),
    );
    let options = VerifyOptions {
        max_age: args.max_age,
        now_ms: args.now_ms,
    };
    match open(&key, args.token.as_deref(), &options) {
        // The data's own text, so integers beyond 64 bits keep every digit.
        Ok(data) => match data.to_json_text() {
            Ok(text) => {
                println!("{{\"ok\":{text}}}");
                ExitCode::SUCCESS
            }
            Err(reason) => {
                println!(
                    "{}",
                    json!({"error": "no_json_form", "reason": reason.to_string()})
                );
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            println!("{}", json!({"error": error.to_string()}));
            ExitCode::FAILURE
        }
    }
}

fn mint_token(args: &MintArgs, encrypt: bool) -> ExitCode {
    let data: Value = match serde_json::from_str(&args.data_json) {
        Ok(data) => data,
        Err(error) => {
            eprintln!("fawkes: DATA_JSON is not JSON: {error}");
            return ExitCode::from(2);
        }
    };
    let key = TokenKey::derive(
        args.key.secret_key_base.as_bytes(),
        args.key.salt.as_bytes(),
    );
    let options = SignOptions {
        max_age: args.max_age.unwrap_or(SignOptions::default().max_age),
        signed_at_ms: args.signed_at_ms,
        ..SignOptions::default()
    };
    let token = if encrypt {
        key.encrypt(&fawkes_etf::json::from_json(&data), &options)
    } else {
        Ok(key.sign_json(&data, &options))
    };
    match token {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fawkes: {error}");
            ExitCode::FAILURE
        }
    }
}
