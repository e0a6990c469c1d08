//! The daemon's command line.
//!
//! Syntax is Go's `flag` package, as the Go daemon parses it: `-name` and `--name` are the same
//! flag; a value is written `-name=value` or `-name value`; a boolean is `-name` (true) or
//! `-name=false` and never takes the next argument; `--` ends the flags; the last occurrence of
//! a flag wins. Unknown flags, stray arguments and the parameters the thick plugin does not take
//! are errors that name the argument (exit code 2, as Go's `flag.ExitOnError`).
//!
//! Besides its own flags (`-config`, `-version`, `-kubeconfig`, `-help`) the daemon takes the
//! thin plugin's entrypoint parameters, which the thick-plugin documentation says it accepts
//! (all but four, [`NOT_FOR_THICK`]). Each stands for one `daemon-config.json` key
//! ([`CONFIG_FLAGS`]) and is applied onto the file's JSON object right after it is read
//! ([`apply`]), before anything interprets it: the flag wins over the file everywhere the key
//! matters (daemon settings, `00-multus.conf` generation, the per-request merge), and the daemon
//! logs each key a flag set or overrode. The flag names are those of the Go thin entrypoint
//! (`cmd/thin_entrypoint`), plus the spellings the Go v3.x thick daemon used for the same
//! settings (`-cni-config-dir`, `-multus-master-cni-file`, `-socket-dir`, `-multus-log-max-*`).

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where the DaemonSet mounts the daemon config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cni/net.d/multus.d/daemon-config.json";

/// The log levels the thin entrypoint accepts for `-multus-log-level` (case-insensitive).
pub const LOG_LEVELS: [&str; 4] = ["debug", "verbose", "error", "panic"];

/// What a flag's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `-name` (true) or `-name=<bool>` with Go's spellings (1, t, T, TRUE, true, True, 0, f, …).
    Bool,
    /// Any string (the next argument when not written `-name=value`).
    Str,
    /// A decimal integer.
    Int,
    /// A TCP port, 0–65535.
    Port,
    /// One of [`LOG_LEVELS`], any case; stored lower-case (as the thin entrypoint writes it).
    LogLevel,
}

impl ValueKind {
    fn placeholder(self) -> &'static str {
        match self {
            ValueKind::Bool => "",
            ValueKind::Str => " VALUE",
            ValueKind::Int => " N",
            ValueKind::Port => " PORT",
            ValueKind::LogLevel => " LEVEL",
        }
    }
}

/// Where a flag's value goes in `daemon-config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A top-level key.
    Key(&'static str),
    /// A key inside a top-level object (`logOptions.maxSize`); the object is created if absent.
    Nested(&'static str, &'static str),
    /// No key: a thin-plugin parameter with nothing to do in the thick daemon; accepted so that
    /// manifests carrying it still start, and logged as ignored (the reason is given).
    Ignored(&'static str),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Key(k) => f.write_str(k),
            Target::Nested(o, k) => write!(f, "{o}.{k}"),
            Target::Ignored(_) => f.write_str("(none)"),
        }
    }
}

/// A flag that stands for a `daemon-config.json` key.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigFlag {
    /// The thin entrypoint's name.
    pub name: &'static str,
    /// Other accepted names (the Go v3.x thick daemon's spellings).
    pub aliases: &'static [&'static str],
    /// How the value is read and checked.
    pub kind: ValueKind,
    /// The config key the value is written to.
    pub target: Target,
    /// The `-help` line (empty for [`Target::Ignored`] flags: `-help` gives their reason instead).
    pub help: &'static str,
}

impl ConfigFlag {
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

const fn flag(name: &'static str, kind: ValueKind, target: Target, help: &'static str) -> ConfigFlag {
    ConfigFlag { name, aliases: &[], kind, target, help }
}

const fn alias(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: ValueKind,
    target: Target,
    help: &'static str,
) -> ConfigFlag {
    ConfigFlag { name, aliases, kind, target, help }
}

use Target::{Ignored, Key, Nested};
use ValueKind::{Bool, Int, LogLevel, Port, Str};

/// Every flag that stands for a config key, in `-help` order.
pub static CONFIG_FLAGS: &[ConfigFlag] = &[
    flag("cni-version", Str, Key("cniVersion"), "cniVersion of the generated 00-multus.conf"),
    flag("multus-conf-file", Str, Key("multusConfigFile"), "auto, or the path of a ready-made config to copy"),
    alias(
        "cni-conf-dir",
        &["cni-config-dir"],
        Str,
        Key("cniConfigDir"),
        "directory the generated (or copied) config is written to",
    ),
    flag("multus-autoconfig-dir", Str, Key("multusAutoconfigDir"), "directory searched for the primary CNI config"),
    alias(
        "multus-master-cni-file-name",
        &["multus-master-cni-file"],
        Str,
        Key("multusMasterCNI"),
        "file name of the primary CNI config (skips the search)",
    ),
    flag("override-network-name", Bool, Key("overrideNetworkName"), "name 00-multus.conf after the primary network"),
    flag("force-cni-version", Bool, Key("forceCNIVersion"), "rewrite the primary config's cniVersion (kind e2e only)"),
    flag("readiness-indicator-file", Str, Key("readinessindicatorfile"), "wait for this file before serving"),
    flag("namespace-isolation", Bool, Key("namespaceIsolation"), "pods may use only NADs of their own namespace"),
    flag("global-namespaces", Str, Key("globalNamespaces"), "comma-separated namespaces exempt from isolation"),
    flag("additional-bin-dir", Str, Key("binDir"), "directory searched first for delegate plugins"),
    flag("multus-cni-conf-dir", Str, Key("confDir"), "directory of on-disk CNI configs named by NADs"),
    flag("multus-kubeconfig-file-host", Str, Key("kubeconfig"), "kubeconfig key of the config (unused by the daemon)"),
    flag("multus-log-level", LogLevel, Key("logLevel"), "debug, verbose, error or panic"),
    flag("multus-log-file", Str, Key("logFile"), "log file (also used by the shim, on the host)"),
    flag("multus-log-to-stderr", Bool, Key("logToStderr"), "echo the log to stderr"),
    flag("multus-log-max-size", Int, Nested("logOptions", "maxSize"), "rotate the log file at this many MB"),
    flag("multus-log-max-age", Int, Nested("logOptions", "maxAge"), "days to keep rotated log files"),
    flag("multus-log-max-backups", Int, Nested("logOptions", "maxBackups"), "rotated log files to keep"),
    flag("multus-log-compress", Bool, Nested("logOptions", "compress"), "gzip rotated log files"),
    flag("socket-dir", Str, Key("socketDir"), "directory of the server socket multus.sock"),
    flag("metricsPort", Port, Key("metricsPort"), "TCP port of the metrics listener"),
    flag("cni-bin-dir", Str, Ignored("the init container installs the shim: install_multus -d DIR"), ""),
    flag("multus-bin-file", Str, Ignored("the init container installs the shim from the image"), ""),
    flag("skip-tls-verify", Bool, Ignored("the daemon writes no kubeconfig for the host"), ""),
];

/// The thin entrypoint parameters the thick-plugin documentation excludes, with what to do
/// instead.
pub static NOT_FOR_THICK: [(&str, &str); 4] = [
    ("skip-multus-binary-copy", "the init container installs the shim; drop the init container to skip it"),
    ("restart-crio", "the runtime picks up 00-multus.conf by itself"),
    (
        "cleanup-config-on-exit",
        "multus-rs keeps 00-multus.conf on exit; set \"cleanupConfigOnExit\": true in daemon-config.json to remove it",
    ),
    ("rename-conf-file", "the primary CNI config is left as it is"),
];

/// One config flag as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The entry of [`CONFIG_FLAGS`] the name matched.
    pub flag: &'static ConfigFlag,
    /// The name as written (an alias, or the thin entrypoint's name), without dashes.
    pub written_as: String,
    /// The value, already typed by [`ConfigFlag::kind`] (a JSON bool, number or string).
    pub value: Value,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    /// Path of daemon-config.json.
    pub config: PathBuf,
    /// Print the version and exit.
    pub version: bool,
    /// Print [`help_text`] and exit.
    pub help: bool,
    /// Use this kubeconfig instead of the in-cluster service account (development and tests);
    /// `$KUBECONFIG` when the flag is absent ([`Flags::from_env`]).
    pub kubeconfig: Option<PathBuf>,
    /// The config flags, in command-line order.
    pub settings: Vec<Setting>,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            config: PathBuf::from(DEFAULT_CONFIG_PATH),
            version: false,
            help: false,
            kubeconfig: None,
            settings: vec![],
        }
    }
}

/// A command line the daemon does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// No flag of that name (Go's message).
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// One of [`NOT_FOR_THICK`]: refused rather than ignored, because the thin behaviour it asks
    /// for would silently not happen.
    #[error("flag -{flag} is a thin-plugin entrypoint parameter that the thick plugin does not take: {instead}")]
    NotForThick {
        /// The name, without dashes.
        flag: String,
        /// What to do instead.
        instead: &'static str,
    },
    /// A non-boolean flag was the last argument (Go's message).
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// The value does not fit the flag's [`ValueKind`].
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// The name as written, without dashes.
        flag: String,
        /// The value as written.
        value: String,
        /// What the value must be.
        reason: String,
    },
    /// `---name` or `-=value` (Go's message).
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// An argument that is not a flag; the daemon takes none.
    #[error("unexpected argument {0:?}: multus-daemon takes only flags")]
    Positional(String),
}

impl Flags {
    /// Parse the arguments after the program name.
    pub fn parse<I, S>(args: I) -> Result<Self, FlagError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut flags = Flags::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            if arg == "--" {
                return match args.next() {
                    Some(extra) => Err(FlagError::Positional(extra)),
                    None => Ok(flags),
                };
            }
            let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
                Some(b) if !b.is_empty() => b,
                _ => return Err(FlagError::Positional(arg)),
            };
            if body.starts_with('-') || body.starts_with('=') {
                return Err(FlagError::BadSyntax(arg));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            match name {
                "config" => flags.config = PathBuf::from(take_value(name, inline, &mut args)?),
                "kubeconfig" => flags.kubeconfig = Some(PathBuf::from(take_value(name, inline, &mut args)?)),
                "version" | "V" => flags.version = bool_value(name, inline.as_deref())?,
                "help" | "h" => flags.help = true,
                _ => {
                    if let Some((flag, instead)) = NOT_FOR_THICK.iter().find(|(n, _)| *n == name) {
                        return Err(FlagError::NotForThick { flag: flag.to_string(), instead });
                    }
                    let Some(spec) = CONFIG_FLAGS.iter().find(|f| f.answers_to(name)) else {
                        return Err(FlagError::Unknown(name.to_string()));
                    };
                    let value = match spec.kind {
                        Bool => Value::Bool(bool_value(name, inline.as_deref())?),
                        kind => typed_value(name, kind, take_value(name, inline, &mut args)?)?,
                    };
                    flags.settings.push(Setting { flag: spec, written_as: name.to_string(), value });
                }
            }
        }
        Ok(flags)
    }

    /// [`Flags::parse`] of this process's arguments, with `$KUBECONFIG` as the default of
    /// `-kubeconfig`.
    pub fn from_env() -> Result<Self, FlagError> {
        let mut flags = Self::parse(std::env::args().skip(1))?;
        if flags.kubeconfig.is_none() {
            flags.kubeconfig = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        Ok(flags)
    }
}

fn take_value(
    name: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, FlagError> {
    inline.or_else(|| rest.next()).ok_or_else(|| FlagError::MissingValue(name.to_string()))
}

/// Go's `strconv.ParseBool`; a bare flag is true.
fn bool_value(name: &str, inline: Option<&str>) -> Result<bool, FlagError> {
    match inline {
        None => Ok(true),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(v) => Err(FlagError::InvalidValue {
            flag: name.to_string(),
            value: v.to_string(),
            reason: "not a boolean (true or false)".into(),
        }),
    }
}

fn typed_value(name: &str, kind: ValueKind, raw: String) -> Result<Value, FlagError> {
    let invalid = |reason: &str| FlagError::InvalidValue {
        flag: name.to_string(),
        value: raw.clone(),
        reason: reason.to_string(),
    };
    match kind {
        Str => Ok(Value::String(raw)),
        Int => raw.parse::<i64>().map(Value::from).map_err(|_| invalid("not an integer")),
        Port => raw.parse::<u16>().map(Value::from).map_err(|_| invalid("not a TCP port (0-65535)")),
        LogLevel => {
            let level = raw.to_ascii_lowercase();
            if LOG_LEVELS.contains(&level.as_str()) {
                Ok(Value::String(level))
            } else {
                Err(invalid("log levels are debug, verbose, error and panic"))
            }
        }
        Bool => bool_value(name, Some(&raw)).map(Value::Bool),
    }
}

/// What one [`Setting`] did to the config object.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The key was set; `previous` is what the file had there (`None`: absent).
    Set {
        /// The flag as written, without dashes.
        flag: String,
        /// The key it set.
        key: Target,
        /// The file's value before the flag (`None`: absent).
        previous: Option<Value>,
        /// The flag's value.
        value: Value,
    },
    /// A flag with no config key ([`Target::Ignored`]).
    Ignored {
        /// The flag as written, without dashes.
        flag: String,
        /// Why the thick daemon has no use for it.
        reason: &'static str,
    },
}

impl Applied {
    /// The file had a different value: the flag overrode it.
    pub fn overrode_the_file(&self) -> bool {
        matches!(self, Applied::Set { previous: Some(p), value, .. } if p != value)
    }

    /// One log line describing the effect.
    pub fn describe(&self) -> String {
        match self {
            Applied::Set { flag, key, previous: Some(p), value } if p != value => {
                format!("flag -{flag}={} overrides \"{key}\": {p} from the config file", display_value(value))
            }
            Applied::Set { flag, key, previous: Some(_), value } => {
                format!("flag -{flag}={} agrees with \"{key}\" in the config file", display_value(value))
            }
            Applied::Set { flag, key, previous: None, value } => {
                format!("flag -{flag}={} sets \"{key}\" (absent from the config file)", display_value(value))
            }
            Applied::Ignored { flag, reason } => format!("flag -{flag} has no effect in the thick plugin: {reason}"),
        }
    }
}

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Apply the config flags onto the config file's object, in order (a later flag for the same key
/// wins), and say what each did. Keys no flag names are left untouched. A nested target whose
/// parent is not an object replaces it with an object holding only the flag's key.
pub fn apply(settings: &[Setting], raw: &mut Map<String, Value>) -> Vec<Applied> {
    settings
        .iter()
        .map(|s| {
            let flag = s.written_as.clone();
            let value = s.value.clone();
            match s.flag.target {
                Ignored(reason) => Applied::Ignored { flag, reason },
                Key(k) => {
                    let previous = raw.insert(k.to_string(), value.clone());
                    Applied::Set { flag, key: s.flag.target, previous, value }
                }
                Nested(object, k) => {
                    let parent = raw.entry(object.to_string()).or_insert_with(|| Value::Object(Map::new()));
                    if !parent.is_object() {
                        *parent = Value::Object(Map::new());
                    }
                    let previous = parent.as_object_mut().and_then(|m| m.insert(k.to_string(), value.clone()));
                    Applied::Set { flag, key: s.flag.target, previous, value }
                }
            }
        })
        .collect()
}

/// What `-help` prints: every flag, and the config key each stands for.
pub fn help_text() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Usage: multus-daemon [flags]\n");
    let _ = writeln!(
        out,
        "Flags are written -name or --name; values -name=value or -name value; booleans -name or\n\
         -name=false. The last occurrence of a flag wins.\n"
    );
    let own: [(&str, &str); 4] = [
        ("-config PATH", "daemon-config.json to read (default /etc/cni/net.d/multus.d/daemon-config.json)"),
        ("-version", "print the version and exit"),
        ("-kubeconfig PATH", "use this kubeconfig, not the in-cluster service account (default $KUBECONFIG)"),
        ("-help, -h", "print this help and exit"),
    ];
    for (f, h) in own {
        let _ = writeln!(out, "  {f}\n        {h}");
    }
    let _ = writeln!(
        out,
        "\nThe thin plugin's entrypoint parameters, each standing for a daemon-config.json key. A flag\n\
         wins over the file (everywhere the key matters), and the daemon logs each key a flag changed.\n"
    );
    for f in CONFIG_FLAGS.iter().filter(|f| !matches!(f.target, Ignored(_))) {
        let _ = writeln!(out, "  {}\n        key {}: {}", flag_names(f), f.target, f.help);
    }
    let _ = writeln!(out, "\nAccepted with no effect (nothing for the thick daemon to do):\n");
    for f in CONFIG_FLAGS {
        if let Ignored(reason) = f.target {
            let _ = writeln!(out, "  {}\n        no key: {reason}", flag_names(f));
        }
    }
    let _ = writeln!(out, "\nNot accepted (the thick-plugin documentation excludes them):\n");
    for (name, instead) in NOT_FOR_THICK {
        let _ = writeln!(out, "  -{name}\n        {instead}");
    }
    out
}

/// `-name VALUE (also -alias)`.
fn flag_names(f: &ConfigFlag) -> String {
    let mut s = format!("-{}{}", f.name, f.kind.placeholder());
    if !f.aliases.is_empty() {
        let aliases: Vec<String> = f.aliases.iter().map(|a| format!("-{a}")).collect();
        let _ = write!(s, " (also {})", aliases.join(", "));
    }
    s
}

/// The version line printed by `-version`.
pub fn version_line() -> String {
    build_info::version_line!("multus-daemon").to_string()
}

#[cfg(test)]
mod tests;
