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
    for args in [&["-config", "/x.json"][..], &["-config=/x.json"], &["--config", "/x.json"], &["--config=/x.json"]] {
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
    let (raw, applied) =
        config_of(&["-cni-bin-dir=/host/opt/cni/bin", "-multus-bin-file", "/x", "-skip-tls-verify"], json!({"a": 1}));
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
    prop::collection::vec((keys, values), 0..8).prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
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
