//! A step in words: its label and what it expects (failure details, JUnit, reports).

use crate::model::{ExitExpect, Step};

/// A step's expectation in words (JUnit failures, reports).
pub fn describe_expectation(s: &Step) -> String {
    if let Some(check) = &s.check {
        let with = serde_json::to_string(&s.with).unwrap_or_default();
        let when = s.poll.map(|p| format!(" within {p} s")).unwrap_or_default();
        return if s.with.is_empty() {
            format!("check {check} holds{when}")
        } else {
            format!("check {check} holds{when} for {with}")
        };
    }
    if let Some(action) = &s.action {
        return format!("action {action} succeeds");
    }
    let e = &s.expect;
    let mut parts = vec![match e.exit {
        ExitExpect::Success => "exit 0".to_string(),
        ExitExpect::Failure => "a non-zero exit with one error object".to_string(),
        ExitExpect::Any => "any exit".to_string(),
    }];
    if !e.code.is_empty() {
        parts.push(format!("error code {}", e.code.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")));
    }
    if !e.msg_contains.is_empty() {
        parts.push(format!("a message mentioning {}", e.msg_contains.join(", ")));
    }
    if e.exit != ExitExpect::Failure && s.cni.as_deref() == Some("ADD") && e.result != Some(false) {
        parts.push("a result valid for the request's cniVersion".into());
    }
    if matches!(s.cni.as_deref(), Some("DEL" | "CHECK" | "GC" | "STATUS")) {
        parts.push("nothing on stdout on success".into());
    }
    if e.version_info {
        parts.push("a valid version object".into());
    }
    if let Some(i) = &e.interface {
        parts.push(format!("an interface {i} in the result"));
    }
    if let Some(r) = &e.equals {
        parts.push(format!("a result equivalent to {r}"));
    }
    if let Some(r) = &e.contains {
        parts.push(format!("a result keeping everything of {r}"));
    }
    if let Some(w) = e.within {
        parts.push(format!("within {w} s"));
    }
    parts.join(", ")
}

pub fn step_label(s: &Step) -> String {
    if let Some(c) = &s.cni {
        format!("{c} {}", s.attachment)
    } else if let Some(c) = &s.check {
        format!("check {c}")
    } else if let Some(a) = &s.action {
        format!("action {a}")
    } else {
        "step".into()
    }
}
