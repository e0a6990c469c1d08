//! A plugin's stdout read as exactly one JSON value: what both the judging (`expect`) and the
//! report's normalisation (`normalize`) start from.

use serde_json::Value;

/// Why stdout is not exactly one JSON value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StdoutJsonError {
    #[error("stdout is empty")]
    Empty,
    #[error("stdout is not JSON: {0}")]
    NotJson(String),
    #[error("stdout holds more than one JSON value")]
    MoreThanOne,
}

/// Parse stdout as exactly one JSON value (nothing but whitespace around it).
pub fn single_json(stdout: &str) -> Result<Value, StdoutJsonError> {
    let mut stream = serde_json::Deserializer::from_str(stdout).into_iter::<Value>();
    let first = match stream.next() {
        None => return Err(StdoutJsonError::Empty),
        Some(Err(e)) => return Err(StdoutJsonError::NotJson(e.to_string())),
        Some(Ok(v)) => v,
    };
    match stream.next() {
        None => Ok(first),
        Some(_) => Err(StdoutJsonError::MoreThanOne),
    }
}
