//! Log rotation settings (`logOptions`), shared by the daemon and the generated config.

use super::fields::{FieldError, Fields};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Log rotation settings (`logOptions`). Unset fields keep the logger's defaults
/// (see [`LogOptions::effective`]). Serialises like Go's struct of pointers: set fields only,
/// in the order `maxAge`, `maxSize`, `maxBackups`, `compress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// `maxAge`: days a rotated log file is kept.
    #[serde(rename = "maxAge", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `maxSize`: megabytes a log file may grow to before it is rotated.
    #[serde(rename = "maxSize", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    /// `maxBackups`: how many rotated files are kept.
    #[serde(rename = "maxBackups", default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i64>,
    /// `compress`: gzip rotated files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
}

/// [`LogOptions`] with the logger defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLogOptions {
    /// Days.
    pub max_age: i64,
    /// Megabytes.
    pub max_size: i64,
    /// Rotated files kept.
    pub max_backups: i64,
    /// Whether rotated files are gzipped.
    pub compress: bool,
}

impl LogOptions {
    /// The object at `key` of `f`, if any.
    pub(crate) fn read(f: &Fields<'_>, key: &str) -> Result<Option<Self>, FieldError> {
        f.object(key)?.map(Self::from_map).transpose()
    }

    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self, FieldError> {
        let f = Fields(m);
        let ctx = |e: FieldError| e.within("logOptions");
        Ok(Self {
            max_age: f.int("maxAge").map_err(ctx)?,
            max_size: f.int("maxSize").map_err(ctx)?,
            max_backups: f.int("maxBackups").map_err(ctx)?,
            compress: f.bool("compress").map_err(ctx)?,
        })
    }

    /// Unset fields take the reference logger's defaults: 5 days, 100 MB, 5 backups, compress.
    pub fn effective(&self) -> EffectiveLogOptions {
        EffectiveLogOptions {
            max_age: self.max_age.unwrap_or(5),
            max_size: self.max_size.unwrap_or(100),
            max_backups: self.max_backups.unwrap_or(5),
            compress: self.compress.unwrap_or(true),
        }
    }
}
