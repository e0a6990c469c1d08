//! The admin API under the admin prefix (default `/_mock`), JSON in and out:
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /journal`, `DELETE /journal` | read / clear the request journal |
//! | `GET /faults`, `POST /faults`, `DELETE /faults` | list / add ([`FaultRule`] JSON) / clear fault rules |
//! | `POST /watches/close`, `/watches/expire`, `/watches/stall` | disrupt open watches (`{"matcher": {…}, "millis": N}`) |
//! | `POST /listening/stop` | stop listening for `{"millis": N}` (default 1000), then listen again on the same port |
//! | `GET /objects?apiVersion=&kind=&namespace=` | list stored objects |
//! | `POST /objects`, `PUT /objects` | create / create-or-replace the object in the body |
//! | `DELETE /objects` | delete `{"apiVersion", "kind", "namespace", "name"}` as an API DELETE does (also `propagationPolicy`, `gracePeriodSeconds`, `preconditions`), or at once with `"force": true` |
//! | `GET /deny`, `PUT /deny` | read / replace the deny rules (`["update:pods/status", …]`) |
//! | `GET /csr/approval`, `PUT /csr/approval` | read / set who approves CSRs (`{"approval": "manual"}`, `approve-all`, `multus-cert-approver`) |
//! | `POST /csr/approve`, `POST /csr/deny` | decide a pending CSR: `{"name": "csr-x", "message": "…"}` |
//! | `POST /client-certificates` | a client certificate from the mock's CA: `{"commonName", "organization", "seconds"}` → `{"certificatePem", "keyPem", "kubeconfig"}` |
//! | `GET /requests`, `DELETE /requests` | request counts since the last reset ([`RequestCounts`](crate::RequestCounts): `total`, `byRequest` (`"patch pods/status"`), `byVerb`, `byResource`, `byUser`, `byUserRequest` (per user, per request), `byStatus`); DELETE returns them and starts again from zero |
//! | `GET /rbac`, `PUT /rbac` | read / set RBAC enforcement for service-account users: `{"enforce": true}` |
//! | `GET /kubelet`, `PUT /kubelet` | read / set when the stand-in kubelet deletes terminating pods: `{"deleteAfterMillis": 0}`, `null` for never |
//! | `POST /tokens` | a service-account token bound to an existing ServiceAccount: `{"namespace", "name", "seconds"}` (no expiry without `seconds`) → `{"token", "kubeconfig"}` |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response};
use serde_json::{Value, json};

use crate::csr::CsrApproval;
use crate::faults::{FaultRule, RequestMatcher};
use crate::listener::{start_listening, stop_listening};
use crate::request::parse_query;
use crate::response::{Body, error_response, json_response};
use crate::shared::{DenyRule, Shared};
use crate::status::ApiError;

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid admin request body: {e}")))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CsrDecision {
    name: String,
    message: String,
}

#[derive(serde::Deserialize)]
struct CsrApprovalBody {
    approval: CsrApproval,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientCertificateRequest {
    common_name: String,
    #[serde(default)]
    organization: Option<String>,
    /// Lifetime; default one day.
    #[serde(default)]
    seconds: Option<u64>,
}

#[derive(serde::Deserialize)]
struct RbacBody {
    enforce: bool,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    namespace: String,
    name: String,
    #[serde(default)]
    seconds: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct WatchCommand {
    matcher: Option<RequestMatcher>,
    millis: Option<u64>,
    /// For expire: also forget the watch history so resuming fails (default true).
    compact: Option<bool>,
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Response<Body> {
    match run(shared, method, rest, query, body).await {
        Ok(value) => json_response(200, &value),
        Err(err) => error_response(&err),
    }
}

async fn run(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let store = &shared.store;
    let faults = &shared.faults;
    match (method, rest.trim_end_matches('/')) {
        (&Method::GET, "" | "healthz") => {
            Ok(json!({"status": "ok", "resourceVersion": store.resource_version().to_string()}))
        }
        (&Method::GET, "journal") => Ok(json!(shared.journal.entries())),
        (&Method::DELETE, "journal") => {
            shared.journal.clear();
            Ok(json!({"cleared": true}))
        }
        (&Method::GET, "faults") => Ok(json!(faults.rules())),
        (&Method::POST, "faults") => {
            let rule: FaultRule = parse_json(body)?;
            faults.add_rule(rule).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(json!(faults.rules()))
        }
        (&Method::DELETE, "faults") => {
            faults.clear();
            Ok(json!([]))
        }
        (&Method::POST, "watches/close") => {
            let command: WatchCommand = parse_json(body)?;
            faults.close_watches(command.matcher);
            Ok(json!({"closed": true}))
        }
        (&Method::POST, "watches/expire") => {
            let command: WatchCommand = parse_json(body)?;
            if command.compact.unwrap_or(true) {
                store.compact(None);
            }
            faults.expire_watches(command.matcher);
            Ok(json!({"expired": true}))
        }
        (&Method::POST, "watches/stall") => {
            let command: WatchCommand = parse_json(body)?;
            let pause = Duration::from_millis(command.millis.unwrap_or(1000));
            faults.stall_watches(command.matcher, pause);
            Ok(json!({"stalledMillis": pause.as_millis() as u64}))
        }
        (&Method::POST, "listening/stop") => {
            let command: WatchCommand = parse_json(body)?;
            let pause = Duration::from_millis(command.millis.unwrap_or(1000));
            let shared = shared.clone();
            // Answer first: stopping closes this very connection.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stop_listening(&shared);
                tokio::time::sleep(pause).await;
                if let Err(err) = start_listening(&shared, None) {
                    tracing::error!(%err, "cannot listen again after an admin stop");
                }
            });
            Ok(json!({"downMillis": pause.as_millis() as u64}))
        }
        (&Method::GET, "objects") => {
            let q = parse_query(query);
            let api_version = q.get("apiVersion").cloned().unwrap_or_else(|| "v1".into());
            let kind = q.get("kind").cloned().ok_or_else(|| ApiError::bad_request("kind is required"))?;
            Ok(json!(store.list_kind(&api_version, &kind, q.get("namespace").map(String::as_str))))
        }
        (&Method::POST, "objects") => store.create(parse_json(body)?),
        (&Method::PUT, "objects") => store.upsert(parse_json(body)?),
        (&Method::DELETE, "objects") => {
            let target: Value = parse_json(body)?;
            let field = |name: &str| target[name].as_str().unwrap_or_default().to_string();
            let (api_version, kind, namespace, name) =
                (field("apiVersion"), field("kind"), field("namespace"), field("name"));
            if target["force"].as_bool() == Some(true) {
                return store.remove_kind(&api_version, &kind, &namespace, &name);
            }
            let options = crate::store::DeleteOptions::from_json(&target)?;
            store.delete_kind_with(&api_version, &kind, &namespace, &name, &options).map(|d| d.object)
        }
        (&Method::GET, "requests") => Ok(json!(shared.counters.snapshot())),
        (&Method::DELETE, "requests") => Ok(json!(shared.counters.take())),
        (&Method::GET, "rbac") => Ok(json!({"enforce": shared.enforce_rbac.load(Ordering::Relaxed)})),
        (&Method::PUT, "rbac") => {
            let body: RbacBody = parse_json(body)?;
            shared.enforce_rbac.store(body.enforce, Ordering::Relaxed);
            Ok(json!({"enforce": body.enforce}))
        }
        (&Method::GET, "kubelet") => Ok(kubelet_setting(store)),
        (&Method::PUT, "kubelet") => {
            let body: Value = parse_json(body)?;
            let delay = match body.get("deleteAfterMillis") {
                Some(Value::Null) => None,
                Some(v) => Some(Duration::from_millis(v.as_u64().ok_or_else(|| {
                    ApiError::bad_request("deleteAfterMillis must be a number of milliseconds, or null for never")
                })?)),
                None => {
                    return Err(ApiError::bad_request(
                        "deleteAfterMillis is required (milliseconds, or null for never)",
                    ));
                }
            };
            store.set_kubelet_delay(delay);
            Ok(kubelet_setting(store))
        }
        (&Method::POST, "tokens") => {
            let request: TokenBody = parse_json(body)?;
            let lifetime = request.seconds.map(Duration::from_secs);
            let (token, _) = shared.sa_tokens.issue(store, &request.namespace, &request.name, lifetime)?;
            let kubeconfig = token_kubeconfig(shared, &token);
            Ok(json!({"token": token, "kubeconfig": kubeconfig}))
        }
        (&Method::GET, "deny") => {
            let rules = shared.deny.read().map(|r| r.clone()).unwrap_or_default();
            Ok(json!(rules.iter().map(|r| format!("{}:{}", r.verb, r.resource)).collect::<Vec<_>>()))
        }
        (&Method::PUT, "deny") => {
            let specs: Vec<String> = parse_json(body)?;
            let rules = specs
                .iter()
                .map(|s| s.parse::<DenyRule>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Ok(mut deny) = shared.deny.write() {
                *deny = rules;
            }
            Ok(json!(specs))
        }
        (&Method::GET, "csr/approval") => {
            let approval = shared.csr_approval.read().map(|a| *a).unwrap_or_default();
            Ok(json!({"approval": approval}))
        }
        (&Method::PUT, "csr/approval") => {
            let body: CsrApprovalBody = parse_json(body)?;
            if let Ok(mut approval) = shared.csr_approval.write() {
                *approval = body.approval;
            }
            shared.csr_resync.notify_one();
            Ok(json!({"approval": body.approval}))
        }
        (&Method::POST, verb @ ("csr/approve" | "csr/deny")) => {
            let decision: CsrDecision = parse_json(body)?;
            let approve = verb == "csr/approve";
            let reason = if approve { "KubeMockApprove" } else { "KubeMockDeny" };
            crate::csr::decide(store, &decision.name, approve, reason, &decision.message)
        }
        (&Method::POST, "client-certificates") => {
            let request: ClientCertificateRequest = parse_json(body)?;
            let now = std::time::SystemTime::now();
            let not_before = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
            let not_after = now + Duration::from_secs(request.seconds.unwrap_or(86_400));
            let issued = shared
                .ca
                .issue_client_certificate(&request.common_name, request.organization.as_deref(), not_before, not_after)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut answer = json!(issued);
            answer["kubeconfig"] = json!(client_certificate_kubeconfig(shared, &issued));
            Ok(answer)
        }
        _ => Err(ApiError::new(404, "NotFound", format!("no admin endpoint {method} {rest:?}"))),
    }
}

fn kubelet_setting(store: &crate::store::Store) -> Value {
    json!({"deleteAfterMillis": store.kubelet_delay().map(|d| d.as_millis() as u64)})
}

/// A kubeconfig for this server with a bearer token as the user.
fn token_kubeconfig(shared: &Shared, token: &str) -> String {
    let scheme = if shared.tls.is_some() { "https" } else { "http" };
    let ca = shared.tls.is_some().then(|| shared.ca.pem());
    crate::kubeconfig_document(&format!("{scheme}://{}", shared.addr), ca, &format!("    token: {token}\n"))
}

/// A kubeconfig for this server with a client certificate as the user.
fn client_certificate_kubeconfig(shared: &Shared, issued: &crate::tls::IssuedCertificate) -> String {
    let scheme = if shared.tls.is_some() { "https" } else { "http" };
    let ca = shared.tls.is_some().then(|| shared.ca.pem());
    crate::kubeconfig_document(&format!("{scheme}://{}", shared.addr), ca, &crate::client_certificate_user(issued))
}
