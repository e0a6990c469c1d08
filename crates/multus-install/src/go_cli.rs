//! The Go init container's command line: `install_multus -t thick -d /host/opt/cni/bin`.
//!
//! The Go tool parses its flags with `spf13/pflag`, and so does this module, rule for rule:
//! `--type thick`, `--type=thick`, `-t thick`, `-t=thick`, `-tthick`; `--dest-dir`/`-d` alike;
//! `-h`/`--help` (also `--help=false`); arguments that are not flags are ignored wherever they
//! stand; `--` ends the flags. A parse error prints the error and the usage on stderr and exits
//! 2 (pflag's `ExitOnError`); `-h` prints the flags on stderr and exits 1; a missing or unknown
//! type prints `--type is missing or --type has invalid value` and exits 1.
//!
//! One extension: the long names also work with a single dash (`-type thick`,
//! `-dest-dir=/x`), as with Go's standard `flag` package. pflag would read `-type` as `-t ype`
//! and fail on the type `ype`, so no working Go command line changes meaning.
//!
//! For `thick` it installs `multus-shim` and then `passthru` (the auxiliary chain's head), each
//! atomically ([`crate::install`]); both sources are checked before either is copied, so a
//! missing `passthru` does not leave a half-updated directory. `thin` would install the thin
//! plugin `multus`, which multus-rs does not ship: that fails like a failed copy. The binaries
//! come from the directory of this executable (the Go tool's fixed `/usr/src/multus-cni/bin`,
//! where the image puts them too).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The name that selects this command line (the file name of `argv[0]`).
pub const PROGRAM_NAME: &str = "install_multus";

/// `--dest-dir`'s default.
pub const DEFAULT_DEST_DIR: &str = "/host/opt/cni/bin";

/// pflag's `PrintDefaults` for the three flags, byte for byte.
pub const FLAG_DEFAULTS: &str = "  -d, --dest-dir string   destination directory (default \"/host/opt/cni/bin\")
  -h, --help              show help message and quit
  -t, --type string       specify installer type (thick/thin)
";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoArgs {
    /// `--type`; empty when not given.
    pub kind: String,
    pub dest_dir: PathBuf,
    pub help: bool,
}

impl Default for GoArgs {
    fn default() -> Self {
        Self { kind: String::new(), dest_dir: PathBuf::from(DEFAULT_DEST_DIR), help: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Type,
    DestDir,
    Help,
}

impl Flag {
    fn by_name(name: &str) -> Option<Self> {
        match name {
            "type" => Some(Self::Type),
            "dest-dir" => Some(Self::DestDir),
            "help" => Some(Self::Help),
            _ => None,
        }
    }

    fn by_shorthand(c: char) -> Option<Self> {
        match c {
            't' => Some(Self::Type),
            'd' => Some(Self::DestDir),
            'h' => Some(Self::Help),
            _ => None,
        }
    }

    fn is_bool(self) -> bool {
        self == Self::Help
    }

    /// How pflag names the flag in a value error.
    fn display(self) -> &'static str {
        match self {
            Self::Type => "-t, --type",
            Self::DestDir => "-d, --dest-dir",
            Self::Help => "-h, --help",
        }
    }
}

impl GoArgs {
    fn set(&mut self, flag: Flag, value: &str) -> Result<(), String> {
        match flag {
            Flag::Type => self.kind = value.to_string(),
            Flag::DestDir => self.dest_dir = PathBuf::from(value),
            Flag::Help => {
                self.help = parse_go_bool(value).ok_or_else(|| {
                    format!(
                        "invalid argument {value:?} for {:?} flag: strconv.ParseBool: parsing {value:?}: invalid syntax",
                        flag.display()
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parse the arguments after the program name as pflag does; `Err` is pflag's message.
pub fn parse(args: &[String]) -> Result<GoArgs, String> {
    let mut parsed = GoArgs::default();
    let mut rest = args;
    while let Some((arg, tail)) = rest.split_first() {
        rest = tail;
        if arg == "--" {
            break;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            continue; // a positional argument: ignored
        }
        if let Some(long) = arg.strip_prefix("--") {
            rest = parse_long(&mut parsed, arg, long, rest)?;
        } else if let Some(long) = single_dash_long_name(arg) {
            rest = parse_long(&mut parsed, arg, long, rest)?;
        } else {
            rest = parse_shorthands(&mut parsed, &arg[1..], rest)?;
        }
    }
    Ok(parsed)
}

/// `-type…`/`-dest-dir…`/`-help…`: a long name after one dash (the extension).
fn single_dash_long_name(arg: &str) -> Option<&str> {
    let body = arg.strip_prefix('-')?;
    let name = body.split_once('=').map_or(body, |(n, _)| n);
    Flag::by_name(name).map(|_| body)
}

fn parse_long<'a>(parsed: &mut GoArgs, arg: &str, body: &str, mut rest: &'a [String]) -> Result<&'a [String], String> {
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(format!("bad flag syntax: {arg}"));
    }
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let flag = Flag::by_name(name).ok_or_else(|| format!("unknown flag: --{name}"))?;
    let value = match inline {
        Some(v) => v.to_string(),
        None if flag.is_bool() => "true".to_string(),
        None => match rest.split_first() {
            Some((next, tail)) => {
                rest = tail;
                next.clone()
            }
            None => return Err(format!("flag needs an argument: {arg}")),
        },
    };
    parsed.set(flag, &value)?;
    Ok(rest)
}

/// A cluster of shorthands (`-h`, `-tthick`, `-t=thick`, `-t thick`), pflag's loop over
/// `parseSingleShortArg`.
fn parse_shorthands<'a>(parsed: &mut GoArgs, cluster: &str, mut rest: &'a [String]) -> Result<&'a [String], String> {
    let mut shorthands = cluster;
    while let Some(c) = shorthands.chars().next() {
        let after = &shorthands[c.len_utf8()..];
        let flag = Flag::by_shorthand(c).ok_or_else(|| format!("unknown shorthand flag: '{c}' in -{shorthands}"))?;
        let value;
        if after.len() > 1 && after.starts_with('=') {
            value = after[1..].to_string();
            shorthands = "";
        } else if flag.is_bool() {
            value = "true".to_string();
            shorthands = after;
        } else if !after.is_empty() {
            value = after.to_string();
            shorthands = "";
        } else if let Some((next, tail)) = rest.split_first() {
            value = next.clone();
            rest = tail;
            shorthands = "";
        } else {
            return Err(format!("flag needs an argument: '{c}' in -{shorthands}"));
        }
        parsed.set(flag, &value)?;
    }
    Ok(rest)
}

/// Run the Go command line; returns the exit status. `argv0` is used in the usage text,
/// `source_dir` holds the binaries to install.
pub fn run(argv0: &str, args: &[String], source_dir: &Path, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let parsed = match parse(args) {
        Ok(p) => p,
        Err(message) => {
            let _ = write!(stderr, "{message}\nUsage of {argv0}:\n{FLAG_DEFAULTS}");
            return 2;
        }
    };
    if parsed.help {
        let _ = stderr.write_all(FLAG_DEFAULTS.as_bytes());
        return 1;
    }
    let plugin = match parsed.kind.as_str() {
        "thick" => "multus-shim",
        "thin" => "multus",
        _ => {
            let _ = writeln!(stderr, "--type is missing or --type has invalid value");
            return 1;
        }
    };
    let dest = &parsed.dest_dir;
    let sources = [plugin, "passthru"].map(|name| (name, source_dir.join(name)));
    for (name, source) in &sources {
        if let Err(e) = std::fs::File::open(source) {
            let hint = if *name == "multus" { " (multus-rs has no thin plugin; use -t thick)" } else { "" };
            let _ = writeln!(stderr, "failed to copy file {name}: {}: {e}{hint}", source.display());
            return 1;
        }
    }
    if !dest.is_dir() {
        let _ = writeln!(stderr, "failed to copy file {plugin}: destination {} is not a directory", dest.display());
        return 1;
    }
    for (name, source) in &sources {
        if let Err(e) = crate::install(source, dest, name) {
            let _ = writeln!(stderr, "failed to copy file {name}: {e}");
            return 1;
        }
        let _ = if *name == "passthru" {
            writeln!(stdout, "passthru cni {} copy succeeded!", source.display())
        } else {
            writeln!(stdout, "multus {name} copy succeeded!")
        };
    }
    0
}

/// Whether `argv[0]` selects this command line.
pub fn invoked_as_go_tool(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == PROGRAM_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn ok(list: &[&str]) -> GoArgs {
        parse(&args(list)).unwrap_or_else(|e| panic!("{list:?}: {e}"))
    }

    fn thick_into(dir: &str) -> GoArgs {
        GoArgs { kind: "thick".into(), dest_dir: dir.into(), help: false }
    }

    #[test]
    fn every_spelling_pflag_accepts() {
        for line in [
            &["-d", "/x", "-t", "thick"][..],
            &["--dest-dir", "/x", "--type", "thick"],
            &["--dest-dir=/x", "--type=thick"],
            &["-d=/x", "-t=thick"],
            &["-d/x", "-tthick"],
            &["pos1", "-t", "thick", "pos2", "-d", "/x", "pos3"],
            // The extension: long names after one dash.
            &["-dest-dir", "/x", "-type", "thick"],
            &["-dest-dir=/x", "-type=thick"],
        ] {
            assert_eq!(ok(line), thick_into("/x"), "{line:?}");
        }
        assert_eq!(ok(&["-t", "thick"]), thick_into(DEFAULT_DEST_DIR));
        // The last occurrence wins; a value may start with a dash.
        assert_eq!(ok(&["-t", "thin", "--type", "thick", "-d", "-x"]), thick_into("-x"));
        // `--` ends the flags.
        assert_eq!(ok(&["-t", "thick", "--", "-d", "/y"]), thick_into(DEFAULT_DEST_DIR));
    }

    #[test]
    fn help_forms() {
        for line in [&["-h"][..], &["--help"], &["-help"], &["--help=true"], &["-h=1"], &["-ht", "thick"]] {
            assert!(ok(line).help, "{line:?}");
        }
        assert!(!ok(&["--help=false", "-t", "thick"]).help);
        assert_eq!(
            parse(&args(&["--help=maybe"])).unwrap_err(),
            r#"invalid argument "maybe" for "-h, --help" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
    }

    #[test]
    fn pflags_errors() {
        let err = |list: &[&str]| parse(&args(list)).unwrap_err();
        assert_eq!(err(&["--kind", "thick"]), "unknown flag: --kind");
        assert_eq!(err(&["-x"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(err(&["-hx"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(err(&["--type"]), "flag needs an argument: --type");
        assert_eq!(err(&["-t"]), "flag needs an argument: 't' in -t");
        assert_eq!(err(&["---type"]), "bad flag syntax: ---type");
        assert_eq!(err(&["--=x"]), "bad flag syntax: --=x");
        // pflag reads an unknown single-dash word as shorthands.
        assert_eq!(err(&["-kind"]), "unknown shorthand flag: 'k' in -kind");
    }

    #[test]
    fn argv0_selects_the_go_command_line() {
        assert!(invoked_as_go_tool("install_multus".as_ref()));
        assert!(invoked_as_go_tool("/usr/src/multus-cni/bin/install_multus".as_ref()));
        assert!(!invoked_as_go_tool("/usr/src/multus-cni/bin/multus-install".as_ref()));
    }

    fn run_in(source: &Path, list: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run("install_multus", &args(list), source, &mut out, &mut err);
        (status, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn thick_installs_the_shim_and_passthru() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(src.join("multus-shim"), "shim").unwrap();
        std::fs::write(src.join("passthru"), "passthru").unwrap();
        let (status, out, err) = run_in(&src, &["-t", "thick", "-d", dest.to_str().unwrap()]);
        assert_eq!((status, err.as_str()), (0, ""));
        assert_eq!(
            out,
            format!(
                "multus multus-shim copy succeeded!\npassthru cni {} copy succeeded!\n",
                src.join("passthru").display()
            )
        );
        assert_eq!(std::fs::read(dest.join("multus-shim")).unwrap(), b"shim");
        assert_eq!(std::fs::read(dest.join("passthru")).unwrap(), b"passthru");
    }

    #[test]
    fn nothing_is_installed_when_a_source_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(src.join("multus-shim"), "shim").unwrap();
        let (status, out, err) = run_in(&src, &["-t", "thick", "-d", dest.to_str().unwrap()]);
        assert_eq!((status, out.as_str()), (1, ""));
        assert!(err.starts_with("failed to copy file passthru: "), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);

        let (status, _, err) = run_in(&src, &["-t", "thin", "-d", dest.to_str().unwrap()]);
        assert_eq!(status, 1);
        assert!(err.starts_with("failed to copy file multus: ") && err.contains("no thin plugin"), "{err}");
    }

    #[test]
    fn type_help_and_usage_errors() {
        let src = Path::new("/nonexistent");
        for list in [&[][..], &["-t", "thicc"], &["-d", "/x"]] {
            assert_eq!(
                run_in(src, list),
                (1, String::new(), "--type is missing or --type has invalid value\n".into()),
                "{list:?}"
            );
        }
        assert_eq!(run_in(src, &["-h"]), (1, String::new(), FLAG_DEFAULTS.into()));
        assert_eq!(
            run_in(src, &["--bogus"]),
            (2, String::new(), format!("unknown flag: --bogus\nUsage of install_multus:\n{FLAG_DEFAULTS}"))
        );
    }
}
