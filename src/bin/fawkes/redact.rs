//! Secrets in the printed configuration (`fawkes check-config`): shown as
//! set or not, never their value.

/// The text printed instead of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// Serialize a secret as [`REDACTED`] (nothing when unset).
pub(crate) fn secret<S: serde::Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}
