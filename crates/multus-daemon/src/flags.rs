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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(args: &[&str]) -> Result<Flags, FlagError> {
        Flags::parse(args.iter().copied())
    }

    fn config_of(args: &[&str], file: Value) -> (Map<String, Value>, Vec<Applied>) {
        let flags = parse(args).unwrap();
        let Value::Object(mut raw) = file else { panic!("not an object") };
        let applied = apply(&flags.settings, &mut raw);
        (raw, applied)
    }

    #[test]
    fn accepts_go_and_gnu_spellings() {
        for args in [&["-config", "/x.json"][..], &["-config=/x.json"], &["--config", "/x.json"], &["--config=/x.json"]]
        {
            assert_eq!(parse(args).unwrap().config, PathBuf::from("/x.json"), "{args:?}");
        }
        assert!(parse(&["-version"]).unwrap().version);
        assert!(parse(&["-V"]).unwrap().version, "-V as in every other binary");
        assert!(!parse(&["-version=false"]).unwrap().version);
        assert_eq!(parse(&[]).unwrap(), Flags::default());
        assert_eq!(parse(&[]).unwrap().config, PathBuf::from(DEFAULT_CONFIG_PATH));
        assert_eq!(parse(&["--kubeconfig", "/k"]).unwrap().kubeconfig, Some(PathBuf::from("/k")));
        assert!(parse(&["-h"]).unwrap().help && parse(&["--help"]).unwrap().help);
    }

    /// The two examples of the thick-plugin documentation.
    #[test]
    fn documented_examples() {
        let (raw, applied) = config_of(
            &["-additional-bin-dir=/opt/multus/bin", "-multus-log-level=debug"],
            json!({"binDir": "/opt/cni/bin", "logLevel": "verbose", "socketDir": "/host/run/multus/"}),
        );
        assert_eq!(raw["binDir"], "/opt/multus/bin");
        assert_eq!(raw["logLevel"], "debug");
        assert_eq!(raw["socketDir"], "/host/run/multus/");
        assert!(applied.iter().all(Applied::overrode_the_file));
        assert_eq!(
            applied[0].describe(),
            "flag -additional-bin-dir=/opt/multus/bin overrides \"binDir\": \"/opt/cni/bin\" from the config file"
        );
    }

    #[test]
    fn every_thin_flag_maps_to_its_key() {
        let cases: &[(&[&str], &str, Value)] = &[
            (&["-cni-version=0.4.0"], "cniVersion", json!("0.4.0")),
            (&["-multus-conf-file", "/etc/x.conf"], "multusConfigFile", json!("/etc/x.conf")),
            (&["-cni-conf-dir=/a"], "cniConfigDir", json!("/a")),
            (&["-cni-config-dir=/a"], "cniConfigDir", json!("/a")),
            (&["-multus-autoconfig-dir=/b"], "multusAutoconfigDir", json!("/b")),
            (&["-multus-master-cni-file-name=10-x.conflist"], "multusMasterCNI", json!("10-x.conflist")),
            (&["-multus-master-cni-file=10-x.conflist"], "multusMasterCNI", json!("10-x.conflist")),
            (&["-override-network-name"], "overrideNetworkName", json!(true)),
            (&["-force-cni-version=true"], "forceCNIVersion", json!(true)),
            (&["-readiness-indicator-file=/r"], "readinessindicatorfile", json!("/r")),
            (&["--namespace-isolation"], "namespaceIsolation", json!(true)),
            (&["-global-namespaces=a,b"], "globalNamespaces", json!("a,b")),
            (&["-additional-bin-dir=/opt/multus/bin"], "binDir", json!("/opt/multus/bin")),
            (&["-multus-cni-conf-dir=/c"], "confDir", json!("/c")),
            (&["-multus-kubeconfig-file-host=/k"], "kubeconfig", json!("/k")),
            (&["-multus-log-level=VERBOSE"], "logLevel", json!("verbose")),
            (&["-multus-log-file=/l"], "logFile", json!("/l")),
            (&["-multus-log-to-stderr=false"], "logToStderr", json!(false)),
            (&["-socket-dir", "/s/"], "socketDir", json!("/s/")),
            (&["-metricsPort=9091"], "metricsPort", json!(9091)),
        ];
        for (args, key, want) in cases {
            let (raw, applied) = config_of(args, json!({}));
            assert_eq!(raw.get(*key), Some(want), "{args:?}");
            assert_eq!(raw.len(), 1, "{args:?} touched other keys: {raw:?}");
            assert!(matches!(&applied[..], [Applied::Set { previous: None, .. }]), "{args:?}");
        }
    }

    #[test]
    fn log_options_are_nested() {
        let (raw, _) = config_of(
            &["-multus-log-max-size=7", "-multus-log-compress=false"],
            json!({"logOptions": {"maxAge": 3, "maxSize": 100}}),
        );
        assert_eq!(raw["logOptions"], json!({"maxAge": 3, "maxSize": 7, "compress": false}));
        let (raw, _) = config_of(&["-multus-log-max-backups", "2", "-multus-log-max-age=9"], json!({}));
        assert_eq!(raw["logOptions"], json!({"maxBackups": 2, "maxAge": 9}));
        let (raw, _) = config_of(&["-multus-log-max-backups=2"], json!({"logOptions": "junk"}));
        assert_eq!(raw["logOptions"], json!({"maxBackups": 2}));
    }

    #[test]
    fn booleans_never_take_the_next_argument() {
        let err = parse(&["-namespace-isolation", "false"]).unwrap_err();
        assert_eq!(err, FlagError::Positional("false".into()));
        let f = parse(&["-namespace-isolation", "-cni-version", "1.0.0"]).unwrap();
        assert_eq!(f.settings.len(), 2);
    }

    #[test]
    fn string_flags_take_the_next_argument_even_if_it_looks_like_a_flag() {
        let f = parse(&["-multus-log-file", "-weird"]).unwrap();
        assert_eq!(f.settings[0].value, json!("-weird"));
    }

    #[test]
    fn the_last_occurrence_wins() {
        let (raw, applied) = config_of(&["-cni-version=0.3.1", "--cni-version", "1.0.0"], json!({}));
        assert_eq!(raw["cniVersion"], "1.0.0");
        assert_eq!(applied.len(), 2);
        let (raw, _) = config_of(&["-cni-conf-dir=/a", "-cni-config-dir=/b"], json!({}));
        assert_eq!(raw["cniConfigDir"], "/b");
    }

    #[test]
    fn agreement_is_not_an_override() {
        let (_, applied) = config_of(&["-cni-version=0.3.1"], json!({"cniVersion": "0.3.1"}));
        assert!(!applied[0].overrode_the_file());
        assert!(applied[0].describe().contains("agrees with \"cniVersion\""));
    }

    #[test]
    fn ignored_flags_are_accepted_and_reported() {
        let (raw, applied) = config_of(
            &["-cni-bin-dir=/host/opt/cni/bin", "-multus-bin-file", "/x", "-skip-tls-verify"],
            json!({"a": 1}),
        );
        assert_eq!(Value::Object(raw), json!({"a": 1}));
        assert_eq!(applied.len(), 3);
        assert!(applied.iter().all(|a| matches!(a, Applied::Ignored { .. })));
        assert!(applied[0].describe().starts_with("flag -cni-bin-dir has no effect in the thick plugin: "));
    }

    #[test]
    fn errors_name_the_argument() {
        let cases: &[(&[&str], &str)] = &[
            (&["-no-such-flag"], "flag provided but not defined: -no-such-flag"),
            (&["--skip-config-watch"], "flag provided but not defined: -skip-config-watch"),
            (&["-config"], "flag needs an argument: -config"),
            (&["-cni-version"], "flag needs an argument: -cni-version"),
            (&["-version=maybe"], "invalid value \"maybe\" for flag -version: not a boolean (true or false)"),
            (
                &["-multus-log-level=info"],
                "invalid value \"info\" for flag -multus-log-level: log levels are debug, verbose, error and panic",
            ),
            (&["-metricsPort=70000"], "invalid value \"70000\" for flag -metricsPort: not a TCP port (0-65535)"),
            (&["-multus-log-max-size=big"], "invalid value \"big\" for flag -multus-log-max-size: not an integer"),
            (&["---config=x"], "bad flag syntax: ---config=x"),
            (&["-=x"], "bad flag syntax: -=x"),
            (&["extra"], "unexpected argument \"extra\": multus-daemon takes only flags"),
            (&["-"], "unexpected argument \"-\": multus-daemon takes only flags"),
            (&["--", "x"], "unexpected argument \"x\": multus-daemon takes only flags"),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args).unwrap_err().to_string(), *want, "{args:?}");
        }
        assert!(parse(&["-version", "--"]).unwrap().version);
    }

    /// The four exceptions of the thick-plugin documentation.
    #[test]
    fn the_documented_exceptions_are_refused_with_what_to_do() {
        for name in ["skip-multus-binary-copy", "restart-crio", "cleanup-config-on-exit", "rename-conf-file"] {
            for arg in [format!("-{name}"), format!("--{name}=true")] {
                let e = Flags::parse([arg.clone()]).unwrap_err();
                assert!(matches!(&e, FlagError::NotForThick { flag, .. } if flag == name), "{arg}: {e}");
                assert!(e.to_string().starts_with(&format!("flag -{name} is a thin-plugin entrypoint parameter")));
            }
        }
        let e = parse(&["-cleanup-config-on-exit"]).unwrap_err().to_string();
        assert!(e.contains("\"cleanupConfigOnExit\": true"), "{e}");
    }

    #[test]
    fn help_lists_every_flag_with_its_key() {
        let h = help_text();
        let lines: Vec<&str> = h.lines().collect();
        for f in CONFIG_FLAGS {
            let at = lines
                .iter()
                .position(|l| l.trim_start().split(' ').next() == Some(&format!("-{}", f.name)))
                .unwrap_or_else(|| panic!("-{} not in help:\n{h}", f.name));
            for a in f.aliases {
                assert!(lines[at].contains(&format!("-{a}")), "{}", lines[at]);
            }
            let explained = lines[at + 1];
            match f.target {
                Ignored(reason) => assert!(explained.contains(reason), "{explained}"),
                t => assert!(explained.contains(&format!("key {t}: ")), "{explained}"),
            }
        }
        for (name, _) in NOT_FOR_THICK {
            assert!(lines.iter().any(|l| l.trim() == format!("-{name}")), "{name}");
        }
        for own in ["-config PATH", "-version", "-kubeconfig PATH", "-help, -h"] {
            assert!(lines.iter().any(|l| l.trim() == own), "{own}");
        }
    }

    #[test]
    fn flag_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for n in CONFIG_FLAGS
            .iter()
            .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
            .chain(NOT_FOR_THICK.iter().map(|(n, _)| *n))
            .chain(["config", "version", "V", "kubeconfig", "help", "h"])
        {
            assert!(seen.insert(n), "{n} defined twice");
        }
    }

    // ---------------------------------------------------------------------------------------
    // Properties

    fn value_flags() -> Vec<&'static ConfigFlag> {
        CONFIG_FLAGS.iter().filter(|f| !matches!(f.target, Ignored(_))).collect()
    }

    /// A config flag, one of its names, and a valid value as text and as JSON.
    fn arb_setting() -> impl Strategy<Value = (&'static ConfigFlag, String, String, Value)> {
        (0..value_flags().len(), any::<prop::sample::Index>(), "[a-zA-Z0-9/._,:-]{0,12}", any::<u16>(), any::<bool>())
            .prop_map(|(i, name_pick, text, n, b)| {
                let f = value_flags()[i];
                let names: Vec<&str> = std::iter::once(f.name).chain(f.aliases.iter().copied()).collect();
                let name = names[name_pick.index(names.len())].to_string();
                let (raw, json) = match f.kind {
                    Bool => (b.to_string(), json!(b)),
                    Str => (text.clone(), json!(text)),
                    Int | Port => (n.to_string(), json!(n)),
                    LogLevel => {
                        let l = LOG_LEVELS[n as usize % 4];
                        (l.to_uppercase(), json!(l))
                    }
                };
                (f, name, raw, json)
            })
    }

    /// The same setting written in one of the accepted syntaxes.
    fn render(name: &str, kind: ValueKind, value: &str, style: u8) -> Vec<String> {
        let dash = if style & 1 == 0 { "-" } else { "--" };
        if kind == Bool {
            if value == "true" && style & 2 == 0 {
                vec![format!("{dash}{name}")]
            } else {
                vec![format!("{dash}{name}={value}")]
            }
        } else if style & 2 == 0 {
            vec![format!("{dash}{name}={value}")]
        } else {
            vec![format!("{dash}{name}"), value.to_string()]
        }
    }

    fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
        let keys = prop::sample::select(vec![
            "cniVersion",
            "binDir",
            "logLevel",
            "socketDir",
            "chrootDir",
            "logOptions",
            "confDir",
            "unrelated",
        ]);
        let values = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z/]{0,8}".prop_map(Value::from),
            Just(json!({"maxAge": 1})),
        ];
        prop::collection::vec((keys, values), 0..8)
            .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    proptest! {
        /// Whatever syntax each flag is written in, parsing gives back the settings, in order.
        #[test]
        fn parse_round_trips(settings in prop::collection::vec((arb_setting(), any::<u8>()), 0..8)) {
            let mut args = vec!["-config".to_string(), "/c.json".to_string()];
            for ((f, name, raw, _), style) in &settings {
                args.extend(render(name, f.kind, raw, *style));
            }
            let flags = Flags::parse(args.clone()).unwrap();
            prop_assert_eq!(&flags.config, &PathBuf::from("/c.json"));
            prop_assert_eq!(flags.settings.len(), settings.len(), "{:?}", args);
            for (got, ((f, name, _, json), _)) in flags.settings.iter().zip(&settings) {
                prop_assert!(std::ptr::eq(got.flag, *f));
                prop_assert_eq!(&got.written_as, name);
                prop_assert_eq!(&got.value, json);
            }
        }

        /// After apply, each targeted key holds the value of the LAST flag for it; every other
        /// key is as it was; applying again changes nothing and overrides nothing.
        #[test]
        fn apply_sets_last_value_and_nothing_else(
            settings in prop::collection::vec(arb_setting(), 0..8),
            file in arb_object(),
        ) {
            let settings: Vec<Setting> = settings
                .into_iter()
                .map(|(flag, name, _, value)| Setting { flag, written_as: name, value })
                .collect();
            let mut raw = file.clone();
            let applied = apply(&settings, &mut raw);
            prop_assert_eq!(applied.len(), settings.len());
            let mut last = std::collections::BTreeMap::new();
            for s in &settings {
                last.insert(s.flag.target.to_string(), (s.flag.target, s.value.clone()));
            }
            for (target, value) in last.values() {
                let got = match target {
                    Key(k) => raw.get(*k),
                    Nested(o, k) => raw.get(*o).and_then(|p| p.get(*k)),
                    Ignored(_) => continue,
                };
                prop_assert_eq!(got, Some(value));
            }
            let touched: std::collections::BTreeSet<&str> = settings
                .iter()
                .filter_map(|s| match s.flag.target { Key(k) | Nested(k, _) => Some(k), Ignored(_) => None })
                .collect();
            for (k, v) in &file {
                if !touched.contains(k.as_str()) {
                    prop_assert_eq!(raw.get(k), Some(v));
                }
            }
            for k in raw.keys() {
                prop_assert!(file.contains_key(k) || touched.contains(k.as_str()), "new key {}", k);
            }
            // Idempotent once duplicates are collapsed to the last value.
            let deduped: Vec<Setting> = settings
                .iter()
                .enumerate()
                .filter(|(i, s)| !settings[i + 1..].iter().any(|t| t.flag.target == s.flag.target))
                .map(|(_, s)| s.clone())
                .collect();
            let mut again = raw.clone();
            let second = apply(&deduped, &mut again);
            prop_assert_eq!(&again, &raw);
            prop_assert!(!second.iter().any(Applied::overrode_the_file));
        }

        /// No argument list makes the parser panic.
        #[test]
        fn parse_never_panics(args in prop::collection::vec("[-=a-z0-9]{0,12}", 0..6)) {
            let _ = Flags::parse(args);
        }
    }
}
