//! Fault injection (latency, failures, conflicts, watch disruption), the request journal and
//! the request counters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::Error;
use crate::status::ApiError;

/// Which requests a fault applies to. Every field that is set must match; an empty matcher
/// matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestMatcher {
    /// HTTP method, e.g. `PUT`.
    pub method: Option<String>,
    /// Regular expression searched in the request path.
    pub path: Option<String>,
    /// Resource as RBAC names it: `pods`, `pods/status`, `network-attachment-definitions`.
    pub resource: Option<String>,
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: Option<String>,
    /// Namespace of the request (none for cluster-scoped and all-namespace requests).
    pub namespace: Option<String>,
}

impl RequestMatcher {
    /// Matches every request with this RBAC verb.
    pub fn verb(verb: &str) -> Self {
        Self { verb: Some(verb.into()), ..Self::default() }
    }

    /// Matches every request for this resource (`pods`, `pods/status`, …).
    pub fn resource(resource: &str) -> Self {
        Self { resource: Some(resource.into()), ..Self::default() }
    }

    /// Additionally require this RBAC verb.
    pub fn and_verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.into());
        self
    }
}

/// What is known about a request when faults are evaluated.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// HTTP method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Resource as RBAC names it, for API requests.
    pub resource: Option<String>,
    /// RBAC verb, for API requests.
    pub verb: Option<String>,
    /// Namespace of the request, if any.
    pub namespace: Option<String>,
}

#[derive(Debug, Clone)]
struct CompiledMatcher {
    spec: RequestMatcher,
    path: Option<Regex>,
}

impl CompiledMatcher {
    fn new(spec: RequestMatcher) -> Result<Self, Error> {
        let path = spec
            .path
            .as_deref()
            .map(|p| Regex::new(p).map_err(|e| Error::InvalidFault(format!("path regex {p:?}: {e}"))))
            .transpose()?;
        Ok(Self { spec, path })
    }

    fn matches(&self, facts: &RequestFacts) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        eq(&self.spec.method, Some(&facts.method))
            && self.path.as_ref().is_none_or(|re| re.is_match(&facts.path))
            && eq(&self.spec.resource, facts.resource.as_deref())
            && eq(&self.spec.verb, facts.verb.as_deref())
            && eq(&self.spec.namespace, facts.namespace.as_deref())
    }
}

/// A fault rule as reported by [`Faults::rules`] and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultRule {
    /// Delay matching requests.
    #[serde(rename_all = "camelCase")]
    Latency {
        /// Which requests.
        matcher: RequestMatcher,
        /// The delay, in milliseconds.
        millis: u64,
    },
    /// Fail the next `remaining` matching requests with `code`.
    #[serde(rename_all = "camelCase")]
    Fail {
        /// Which requests.
        matcher: RequestMatcher,
        /// How many more requests fail.
        remaining: usize,
        /// HTTP status code of the failure.
        code: u16,
        /// Status message (a default one for the code when absent).
        message: Option<String>,
    },
    /// Answer the next `remaining` matching updates and patches with 409 Conflict.
    #[serde(rename_all = "camelCase")]
    Conflict {
        /// Which requests.
        matcher: RequestMatcher,
        /// How many more requests get 409.
        remaining: usize,
    },
}

/// Instructions to open watches.
#[derive(Debug, Clone)]
pub enum WatchControl {
    /// End the watch stream cleanly (clients re-watch from their last resourceVersion).
    Close(Option<RequestMatcher>),
    /// Send an ERROR event with a 410 Expired Status and end (clients relist).
    Expire(Option<RequestMatcher>),
    /// Stop delivering events for a while (events are delivered afterwards).
    Stall(Option<RequestMatcher>, Duration),
}

impl WatchControl {
    /// Whether the instruction concerns the watch described by `facts`.
    pub fn applies_to(&self, facts: &RequestFacts) -> bool {
        let matcher = match self {
            WatchControl::Close(m) | WatchControl::Expire(m) | WatchControl::Stall(m, _) => m,
        };
        matcher.as_ref().is_none_or(|m| CompiledMatcher::new(m.clone()).is_ok_and(|c| c.matches(facts)))
    }
}

/// What the request pipeline should do after consulting the faults.
#[derive(Debug, Default)]
pub struct FaultDecision {
    /// Wait this long before handling the request.
    pub delay: Duration,
    /// Answer with this error instead of handling the request.
    pub fail: Option<ApiError>,
}

#[derive(Default)]
struct FaultState {
    latency: Vec<(CompiledMatcher, Duration)>,
    fail: Vec<(CompiledMatcher, usize, u16, Option<String>)>,
    conflict: Vec<(CompiledMatcher, usize)>,
}

/// Fault injection, shared by the library API and the admin endpoint.
pub struct Faults {
    state: Mutex<FaultState>,
    watch_control: broadcast::Sender<WatchControl>,
}

impl Default for Faults {
    fn default() -> Self {
        let (watch_control, _) = broadcast::channel(64);
        Self { state: Mutex::new(FaultState::default()), watch_control }
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delays every matching request by `delay`.
    pub fn add_latency(&self, matcher: RequestMatcher, delay: Duration) -> Result<(), Error> {
        let compiled = CompiledMatcher::new(matcher)?;
        self.lock().latency.push((compiled, delay));
        Ok(())
    }

    /// Fails the next `count` matching requests with a Status of `code` (429 adds Retry-After).
    pub fn fail_next(
        &self,
        matcher: RequestMatcher,
        count: usize,
        code: u16,
        message: Option<String>,
    ) -> Result<(), Error> {
        if !(400..=599).contains(&code) {
            return Err(Error::InvalidFault(format!("status code {code} is not an error code")));
        }
        let compiled = CompiledMatcher::new(matcher)?;
        self.lock().fail.push((compiled, count, code, message));
        Ok(())
    }

    /// Answers the next `count` matching update/patch requests with 409 Conflict.
    pub fn conflict_next(&self, matcher: RequestMatcher, count: usize) -> Result<(), Error> {
        let compiled = CompiledMatcher::new(matcher)?;
        self.lock().conflict.push((compiled, count));
        Ok(())
    }

    /// Ends matching open watches (all when None).
    pub fn close_watches(&self, matcher: Option<RequestMatcher>) {
        let _ = self.watch_control.send(WatchControl::Close(matcher));
    }

    /// Sends 410 Expired to matching open watches and ends them. Pair with
    /// `Store::compact` so that resuming from the old resourceVersion fails too.
    pub fn expire_watches(&self, matcher: Option<RequestMatcher>) {
        let _ = self.watch_control.send(WatchControl::Expire(matcher));
    }

    /// Holds back events on matching open watches for `duration`.
    pub fn stall_watches(&self, matcher: Option<RequestMatcher>, duration: Duration) {
        let _ = self.watch_control.send(WatchControl::Stall(matcher, duration));
    }

    /// Receive every later watch instruction (each open watch subscribes once).
    pub fn subscribe_watch_control(&self) -> broadcast::Receiver<WatchControl> {
        self.watch_control.subscribe()
    }

    /// Removes all latency, failure and conflict rules.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// The active rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        let state = self.lock();
        let mut rules: Vec<FaultRule> = state
            .latency
            .iter()
            .map(|(m, d)| FaultRule::Latency { matcher: m.spec.clone(), millis: d.as_millis() as u64 })
            .collect();
        rules.extend(state.fail.iter().map(|(m, remaining, code, message)| FaultRule::Fail {
            matcher: m.spec.clone(),
            remaining: *remaining,
            code: *code,
            message: message.clone(),
        }));
        rules.extend(
            state
                .conflict
                .iter()
                .map(|(m, remaining)| FaultRule::Conflict { matcher: m.spec.clone(), remaining: *remaining }),
        );
        rules
    }

    /// Adds a rule given in the admin API's JSON form.
    pub fn add_rule(&self, rule: FaultRule) -> Result<(), Error> {
        match rule {
            FaultRule::Latency { matcher, millis } => self.add_latency(matcher, Duration::from_millis(millis)),
            FaultRule::Fail { matcher, remaining, code, message } => self.fail_next(matcher, remaining, code, message),
            FaultRule::Conflict { matcher, remaining } => self.conflict_next(matcher, remaining),
        }
    }

    /// Consumes the faults that apply to one request. `conflict_target` is the
    /// (resource, name) for updates and patches, which are the only requests that can be
    /// answered with an injected conflict.
    pub fn decide(
        &self,
        facts: &RequestFacts,
        conflict_target: Option<(&crate::resources::Gvr, &str)>,
    ) -> FaultDecision {
        let mut state = self.lock();
        let delay = state.latency.iter().filter(|(m, _)| m.matches(facts)).map(|(_, d)| *d).sum();
        let mut fail = None;
        if let Some(entry) = state.fail.iter_mut().find(|(m, remaining, _, _)| *remaining > 0 && m.matches(facts)) {
            entry.1 -= 1;
            let err = ApiError::for_code(entry.2, entry.3.clone());
            fail = Some(err);
        }
        if fail.is_none()
            && let Some((gvr, name)) = conflict_target
            && let Some(entry) = state.conflict.iter_mut().find(|(m, remaining)| *remaining > 0 && m.matches(facts))
        {
            entry.1 -= 1;
            fail = Some(ApiError::conflict(gvr, name));
        }
        state.fail.retain(|(_, remaining, _, _)| *remaining > 0);
        state.conflict.retain(|(_, remaining)| *remaining > 0);
        FaultDecision { delay, fail }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// `Content-Type` of the request body.
    pub content_type: Option<String>,
    /// The body as JSON: JSON and YAML bodies as sent, protobuf bodies decoded where the type
    /// is known, `{"base64": …}` otherwise; None when empty.
    pub body: Option<Value>,
    /// Response status (200 for watches, which stream afterwards).
    pub status: u16,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
    /// The authenticated user (client certificate CN, the token's user, or
    /// `system:anonymous`); None for unauthenticated routes and refused requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The RBAC verb of an API request (`get`, `list`, `watch`, `patch`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// The resource of an API request as RBAC names it (`pods`, `pods/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The namespace of an API request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Bounded journal of requests, oldest dropped first.
pub struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    capacity: usize,
}

impl Journal {
    /// A journal keeping the last `capacity` requests (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(VecDeque::new()), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<JournalEntry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Add a request, dropping the oldest when full.
    pub fn record(&self, entry: JournalEntry) {
        let mut entries = self.lock();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The kept requests, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.lock().iter().cloned().collect()
    }

    /// Forget every kept request.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// Requests counted since the last reset, unbounded by the journal's capacity: what a test
/// reads to count the API requests one operation costs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// When counting started (RFC 3339).
    pub since: String,
    /// Every request (admin API requests excluded).
    pub total: u64,
    /// Per `"<verb> <resource>"` for API requests (`"patch pods/status"`), `"<METHOD> <path>"`
    /// for the others (`"GET /api"`).
    pub by_request: BTreeMap<String, u64>,
    /// Per RBAC verb (`"GET"`, `"POST"` … for requests that are not API requests).
    pub by_verb: BTreeMap<String, u64>,
    /// Per resource (`pods`, `pods/status`; API requests only).
    pub by_resource: BTreeMap<String, u64>,
    /// Per authenticated user (`-` for requests without one).
    pub by_user: BTreeMap<String, u64>,
    /// Per user, then per request as in `by_request`: what one client (one node) asked.
    #[serde(default)]
    pub by_user_request: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per response status code.
    pub by_status: BTreeMap<u16, u64>,
}

/// The request counters behind [`RequestCounts`].
pub struct RequestCounter {
    counts: Mutex<RequestCounts>,
}

impl Default for RequestCounter {
    fn default() -> Self {
        Self { counts: Mutex::new(RequestCounts { since: now(), ..RequestCounts::default() }) }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl RequestCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, RequestCounts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one request.
    pub fn record(&self, entry: &JournalEntry) {
        let mut counts = self.lock();
        counts.total += 1;
        let verb = entry.verb.clone().unwrap_or_else(|| entry.method.clone());
        let request = match &entry.resource {
            Some(resource) => format!("{verb} {resource}"),
            None => format!("{} {}", entry.method, entry.path),
        };
        let user = entry.user.clone().unwrap_or_else(|| "-".into());
        *counts.by_user_request.entry(user).or_default().entry(request.clone()).or_default() += 1;
        *counts.by_request.entry(request).or_default() += 1;
        *counts.by_verb.entry(verb).or_default() += 1;
        if let Some(resource) = &entry.resource {
            *counts.by_resource.entry(resource.clone()).or_default() += 1;
        }
        *counts.by_user.entry(entry.user.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
        *counts.by_status.entry(entry.status).or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        self.lock().clone()
    }

    /// The counts so far; counting starts again from zero.
    pub fn take(&self) -> RequestCounts {
        std::mem::replace(&mut *self.lock(), RequestCounts { since: now(), ..RequestCounts::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Gvr;

    fn facts(verb: &str, resource: &str) -> RequestFacts {
        RequestFacts {
            method: "PUT".into(),
            path: "/api/v1/namespaces/default/pods/p/status".into(),
            resource: Some(resource.into()),
            verb: Some(verb.into()),
            namespace: Some("default".into()),
        }
    }

    #[test]
    fn counters_count_and_reset() {
        let counter = RequestCounter::default();
        let entry = |verb: Option<&str>, resource: Option<&str>, status| JournalEntry {
            time: String::new(),
            method: "GET".into(),
            path: "/api".into(),
            query: None,
            content_type: None,
            body: None,
            status,
            user_agent: None,
            user: Some("u".into()),
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            namespace: None,
        };
        counter.record(&entry(Some("get"), Some("pods"), 200));
        counter.record(&entry(Some("get"), Some("pods"), 404));
        counter.record(&entry(None, None, 200));
        let counts = counter.take();
        assert_eq!(counts.total, 3);
        assert_eq!(counts.by_request["get pods"], 2);
        assert_eq!(counts.by_request["GET /api"], 1);
        assert_eq!(counts.by_status[&404], 1);
        assert_eq!(counts.by_user_request["u"]["get pods"], 2);
        assert_eq!(counts.by_user_request["u"]["GET /api"], 1);
        assert_eq!(counter.snapshot().total, 0);
    }

    #[test]
    fn fail_next_counts_down() {
        let faults = Faults::default();
        faults.fail_next(RequestMatcher::resource("pods/status"), 2, 429, None).unwrap();
        let f = facts("update", "pods/status");
        assert_eq!(faults.decide(&f, None).fail.unwrap().retry_after, Some(1));
        assert!(faults.decide(&f, None).fail.is_some());
        assert!(faults.decide(&f, None).fail.is_none());
        assert!(faults.rules().is_empty());
    }

    #[test]
    fn conflicts_only_for_updates_and_latency_adds_up() {
        let faults = Faults::default();
        let gvr = Gvr::new("", "v1", "pods");
        faults.conflict_next(RequestMatcher::default(), 1).unwrap();
        faults
            .add_latency(RequestMatcher { path: Some("/pods/".into()), ..Default::default() }, Duration::from_millis(5))
            .unwrap();
        assert!(faults.decide(&facts("get", "pods"), None).fail.is_none());
        let decision = faults.decide(&facts("update", "pods"), Some((&gvr, "p")));
        assert_eq!(decision.fail.unwrap().reason, "Conflict");
        assert_eq!(decision.delay, Duration::from_millis(5));
        assert!(
            faults
                .add_latency(RequestMatcher { path: Some("(".into()), ..Default::default() }, Duration::ZERO)
                .is_err()
        );
        assert!(faults.fail_next(RequestMatcher::default(), 1, 200, None).is_err());
    }

    #[test]
    fn rules_round_trip_as_json() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"type":"fail","matcher":{"verb":"create","resource":"events"},"remaining":1,"code":500}"#,
        )
        .unwrap();
        let faults = Faults::default();
        faults.add_rule(rule.clone()).unwrap();
        assert_eq!(
            faults.rules(),
            vec![FaultRule::Fail {
                matcher: RequestMatcher {
                    verb: Some("create".into()),
                    resource: Some("events".into()),
                    ..Default::default()
                },
                remaining: 1,
                code: 500,
                message: None
            }]
        );
    }

    #[test]
    fn journal_is_bounded() {
        let journal = Journal::new(2);
        for i in 0..3 {
            journal.record(JournalEntry {
                time: String::new(),
                method: "GET".into(),
                path: format!("/{i}"),
                query: None,
                content_type: None,
                body: None,
                status: 200,
                user_agent: None,
                user: None,
                verb: None,
                resource: None,
                namespace: None,
            });
        }
        assert_eq!(journal.entries().iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), vec!["/1", "/2"]);
    }
}
