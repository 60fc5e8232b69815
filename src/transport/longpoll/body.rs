//! A longpoll POST body to the frames it carries.
//!
//! `content-type: application/x-ndjson` (exactly, as Phoenix matches it) is
//! a batch: one frame per line (`\n` or `\r\n`), at most the first
//! [`MAX_BATCH`] lines; a line starting with `[` is a text frame, any other
//! line is the standard base64 of a binary frame. Any other content type
//! makes the whole body one text frame.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::session::InFrame;

/// Lines of an ndjson batch that are read; later ones are ignored
/// (phoenix.js `MAX_LONGPOLL_BATCH_SIZE`, Phoenix `@max_poll_batch_size`).
pub(super) const MAX_BATCH: usize = 100;
/// The content type of a batch.
pub(super) const NDJSON: &str = "application/x-ndjson";

/// Standard base64, padding optional (browsers' `btoa` pads).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a POST body could not be read as frames (answered with HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// A text frame is not valid UTF-8.
    #[error("text frame {line} is not UTF-8")]
    NotUtf8 {
        /// 1-based line (1 for a non-batch body).
        line: usize,
    },
    /// A binary line of a batch is not standard base64.
    #[error("binary frame {line} is not base64")]
    NotBase64 {
        /// 1-based line.
        line: usize,
    },
}

/// The frames of a POST body, in order. `content_type` is the request's
/// single `content-type` value (`None` when absent or repeated).
pub(crate) fn frames(content_type: Option<&str>, body: Bytes) -> Result<Vec<InFrame>, BodyError> {
    if content_type != Some(NDJSON) {
        let text = Utf8Bytes::try_from(body).map_err(|_| BodyError::NotUtf8 { line: 1 })?;
        return Ok(vec![InFrame::Text(text)]);
    }
    let mut frames = Vec::new();
    let mut start = 0;
    let mut line_no = 0;
    while start <= body.len() && line_no < MAX_BATCH {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| start + i);
        line_no += 1;
        let mut line = body.slice(start..end);
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        start = end + 1;
        if line.is_empty() {
            // A trailing newline or a blank line: nothing to dispatch.
            continue;
        }
        if line.first() == Some(&b'[') {
            let text =
                Utf8Bytes::try_from(line).map_err(|_| BodyError::NotUtf8 { line: line_no })?;
            frames.push(InFrame::Text(text));
        } else {
            let bytes = BASE64
                .decode(&line)
                .map_err(|_| BodyError::NotBase64 { line: line_no })?;
            frames.push(InFrame::Binary(Bytes::from(bytes)));
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[InFrame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                InFrame::Text(t) => t.as_str().to_owned(),
                InFrame::Binary(b) => format!("bin:{b:?}"),
            })
            .collect()
    }

    #[test]
    fn ndjson_lines_text_and_binary() {
        let body = Bytes::from_static(b"[\"a\"]\r\n[\"b\"]\nAAEC\n");
        let frames = frames(Some(NDJSON), body).expect("frames");
        assert_eq!(
            texts(&frames),
            vec!["[\"a\"]", "[\"b\"]", "bin:b\"\\0\\x01\\x02\""]
        );
    }

    #[test]
    fn other_content_types_are_one_text_frame() {
        let body = Bytes::from_static(b"[\"a\"]\n[\"b\"]");
        for ct in [
            None,
            Some("application/json"),
            Some("application/x-ndjson; charset=utf-8"),
        ] {
            let frames = frames(ct, body.clone()).expect("frames");
            assert_eq!(texts(&frames), vec!["[\"a\"]\n[\"b\"]"]);
        }
    }

    #[test]
    fn only_the_first_hundred_lines() {
        let body: String = (0..150).map(|i| format!("[{i}]\n")).collect();
        let frames = frames(Some(NDJSON), Bytes::from(body)).expect("frames");
        assert_eq!(frames.len(), MAX_BATCH);
        assert_eq!(texts(&frames)[99], "[99]");
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(
            frames(Some(NDJSON), Bytes::from_static(b"[1]\n!!!")).err(),
            Some(BodyError::NotBase64 { line: 2 })
        );
        assert_eq!(
            frames(Some(NDJSON), Bytes::from_static(b"[\xff]")).err(),
            Some(BodyError::NotUtf8 { line: 1 })
        );
        assert_eq!(
            frames(None, Bytes::from_static(b"\xff")).err(),
            Some(BodyError::NotUtf8 { line: 1 })
        );
    }
}
