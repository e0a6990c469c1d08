//! The HTTP(S) server: connection handling, authentication, faults, routing and responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use crate::api::{Reply, RequestContext, body_for_journal, execute_as};
use crate::auth::UserInfo;
use crate::discovery;
use crate::faults::{JournalEntry, RequestFacts};
use crate::request::{ResourceRequest, Route, Verb, route};
use crate::response::{error_response, json_response};
use crate::shared::Shared;
use crate::status::ApiError;
use futures::future::BoxFuture;

pub use crate::response::Body;
pub use crate::shared::DenyRule;

const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The client certificate chain presented on a connection (end entity first).
type PeerCertificates = Option<Arc<[CertificateDer<'static>]>>;

fn service(
    shared: &Arc<Shared>,
    peer: PeerCertificates,
) -> impl hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ use<> {
    let handler = shared.clone();
    hyper::service::service_fn(move |req| {
        let shared = handler.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
    })
}

/// Serves one accepted connection ([`Shared::serve_connection`]).
pub(crate) fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) -> BoxFuture<'static, ()> {
    Box::pin(serve_connection(stream, shared))
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match &shared.tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => {
                let peer: PeerCertificates = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
                builder.serve_connection(TokioIo::new(tls), service(&shared, peer)).await
            }
            Err(err) => {
                tracing::debug!(%err, "TLS handshake failed");
                return;
            }
        },
        None => builder.serve_connection(TokioIo::new(stream), service(&shared, None)).await,
    };
    if let Err(err) = result {
        tracing::debug!(%err, "connection ended with an error");
    }
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, peer: PeerCertificates) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let accept = header_str(&req, header::ACCEPT);
    let content_type = header_str(&req, header::CONTENT_TYPE);
    let authorization = header_str(&req, header::AUTHORIZATION);
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("cannot read the request body: {err}"),
            ));
        }
    };
    let started = std::time::Instant::now();
    let credentials = Credentials { authorization: &authorization, certificates: peer.as_deref() };
    let (response, user, facts) =
        dispatch(&shared, &method, &path, query.as_deref(), &accept, &content_type, credentials, &body).await;
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    if !path.starts_with(&shared.admin_prefix) {
        let (verb, resource, namespace) = match facts {
            Some(facts) => (facts.verb, facts.resource, facts.namespace),
            None => (None, None, None),
        };
        let entry = JournalEntry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            method: method.to_string(),
            path,
            query,
            content_type: Some(content_type.clone()).filter(|c| !c.is_empty()),
            body: body_for_journal(&content_type, &body),
            status,
            user_agent,
            user: user.map(|u| u.username),
            verb,
            resource,
            namespace,
        };
        shared.counters.record(&entry);
        shared.journal.record(entry);
    }
    response
}

/// What a request presents to authenticate.
#[derive(Clone, Copy)]
struct Credentials<'a> {
    authorization: &'a str,
    certificates: Option<&'a [CertificateDer<'static>]>,
}

/// The request's user: a valid client certificate, else a known bearer token (the configured
/// one, bound to its ServiceAccount, or one issued by a TokenRequest), else (no token
/// configured) anonymous. A presented certificate that fails the check, a service-account
/// token whose ServiceAccount is gone, or a missing or wrong token when one is configured, is
/// a 401.
fn authenticate(shared: &Shared, credentials: Credentials<'_>) -> Result<UserInfo, ApiError> {
    let mut certificate_failure = None;
    if let (Some(chain), Some(check)) = (credentials.certificates, &shared.client_certificates)
        && !chain.is_empty()
    {
        match check.authenticate(chain) {
            Ok(user) => return Ok(user),
            Err(reason) => certificate_failure = Some(reason),
        }
    }
    let bearer = credentials.authorization.strip_prefix("Bearer ").map(str::trim);
    if let Some(bearer) = bearer.filter(|b| !b.is_empty()) {
        if shared.token.as_deref() == Some(bearer) && crate::auth::is_bootstrap_token(bearer) {
            return Ok(UserInfo::for_token(bearer));
        }
        match shared.sa_tokens.authenticate(&shared.store, bearer) {
            Some(Ok(user)) => return Ok(user),
            Some(Err(reason)) => {
                tracing::info!(%reason, "service account token refused");
                return Err(ApiError::unauthorized());
            }
            None => {}
        }
    }
    let outcome = match &shared.token {
        Some(token) if bearer == Some(token.as_str()) => Ok(UserInfo::for_token(token)),
        Some(_) => Err(ApiError::unauthorized()),
        None if certificate_failure.is_some() => Err(ApiError::unauthorized()),
        None => Ok(UserInfo::anonymous()),
    };
    if outcome.is_err()
        && let Some(reason) = certificate_failure
    {
        tracing::info!(%reason, "client certificate refused");
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    accept: &str,
    content_type: &str,
    credentials: Credentials<'_>,
    body: &Bytes,
) -> (Response<Body>, Option<UserInfo>, Option<RequestFacts>) {
    let registry = shared.store.registry().clone();
    let routed = route(method, path, query, accept, content_type, &registry, &shared.admin_prefix);
    if let Ok(Route::Admin(rest)) = &routed {
        return (crate::admin::handle(shared, method, rest, query, body).await, None, None);
    }
    let facts = match &routed {
        Ok(Route::Resource(req)) => Some(RequestFacts {
            method: method.to_string(),
            path: path.to_string(),
            resource: Some(req.resource_name()),
            verb: Some(req.verb.as_str().to_string()),
            namespace: req.namespace.clone(),
        }),
        _ => None,
    };
    if matches!(routed, Ok(Route::Version | Route::Health)) {
        let context = RequestContext::default();
        return (serve(shared, method, path, routed, accept, content_type, body, context).await, None, facts);
    }
    let user = match authenticate(shared, credentials) {
        Ok(user) => user,
        Err(err) => return (error_response(&err), None, facts),
    };
    let context = RequestContext { user: user.clone(), csr_min_expiration_seconds: shared.csr_min_expiration_seconds };
    (serve(shared, method, path, routed, accept, content_type, body, context).await, Some(user), facts)
}

/// The authorizer's view of a resource request.
fn attributes<'a>(req: &'a ResourceRequest, user: &'a UserInfo) -> crate::rbac::Attributes<'a> {
    let name = req.name.as_deref().or_else(|| match req.verb {
        Verb::List | Verb::Watch => req.options.field_selector.pinned("metadata.name"),
        _ => None,
    });
    crate::rbac::Attributes {
        user,
        verb: req.verb.as_str(),
        group: &req.def.group,
        resource: &req.def.plural,
        subresource: req.subresource.as_deref(),
        namespace: req.namespace.as_deref(),
        name,
    }
}

/// Deny rules first, then (when enforced) RBAC for service-account users.
fn authorize(shared: &Shared, req: &ResourceRequest, user: &UserInfo) -> Result<(), ApiError> {
    let verb = req.verb.as_str();
    let resource = req.resource_name();
    let denied = shared.deny.read().map(|rules| rules.iter().any(|r| r.denies(verb, &resource))).unwrap_or(false);
    if denied {
        return Err(crate::rbac::forbidden(&attributes(req, user), None));
    }
    let enforced = shared.enforce_rbac.load(std::sync::atomic::Ordering::Relaxed);
    if enforced && user.service_account_name().is_some() && !user.is_master() {
        crate::rbac::authorize(&shared.store, &attributes(req, user))?;
        let decides =
            matches!(req.verb, Verb::Update | Verb::Patch(_)) && req.subresource.as_deref() == Some("approval");
        if decides && crate::csr::is_csr(&req.def) {
            crate::csr::admit_approval(&shared.store, user, req.name.as_deref().unwrap_or_default())?;
        }
    }
    Ok(())
}

/// `POST serviceaccounts/<name>/token`: a TokenRequest, answered with a token bound to the
/// ServiceAccount (10 minutes to 2^32 seconds, default one hour).
fn token_request(shared: &Shared, req: &ResourceRequest, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        crate::api::decode_body(content_type, body)?
    };
    let seconds = request["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let invalid = |why: &str| {
        ApiError::new(
            422,
            "Invalid",
            format!(
                "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: {why}"
            ),
        )
    };
    if seconds < 600 {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if seconds > 1 << 32 {
        return Err(invalid("may not specify a duration larger than 2^32 seconds"));
    }
    let lifetime = Duration::from_secs(seconds.unsigned_abs());
    let (token, _) = shared.sa_tokens.issue(&shared.store, &namespace, &name, Some(lifetime))?;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    let audiences = match &request["spec"]["audiences"] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => serde_json::json!(["https://kubernetes.default.svc.cluster.local"]),
    };
    let mut spec = serde_json::json!({"audiences": audiences, "expirationSeconds": seconds});
    if request["spec"]["boundObjectRef"].is_object() {
        spec["boundObjectRef"] = request["spec"]["boundObjectRef"].clone();
    }
    Ok(serde_json::json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()}
    }))
}

/// Faults, then the route's answer.
#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    routed: Result<Route, ApiError>,
    accept: &str,
    content_type: &str,
    body: &Bytes,
    context: RequestContext,
) -> Response<Body> {
    let registry = shared.store.registry().clone();
    let mut facts = RequestFacts { method: method.to_string(), path: path.to_string(), ..Default::default() };
    let mut conflict_target = None;
    if let Ok(Route::Resource(req)) = &routed {
        facts.resource = Some(req.resource_name());
        facts.verb = Some(req.verb.as_str().to_string());
        facts.namespace = req.namespace.clone();
        if matches!(req.verb, Verb::Update | Verb::Patch(_)) {
            conflict_target = Some((req.def.gvr(), req.name.clone().unwrap_or_default()));
        }
    }
    let decision = shared.faults.decide(&facts, conflict_target.as_ref().map(|(g, n)| (g, n.as_str())));
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(err) = decision.fail {
        return error_response(&err);
    }
    let routed = match routed {
        Ok(r) => r,
        Err(err) => return error_response(&err),
    };
    match routed {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Route::CoreVersions => json_response(200, &discovery::core_versions(&shared.addr.to_string())),
        Route::Groups => json_response(200, &discovery::group_list(&registry)),
        Route::Group(name) => match discovery::group(&registry, &name) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource")),
        },
        Route::ResourceList { group, version } => {
            json_response(200, &discovery::resource_list(&registry, &group, &version))
        }
        Route::OpenApiV2 => {
            if accept.is_empty() || accept.contains("json") || accept.contains("*/*") {
                json_response(200, &discovery::openapi_v2())
            } else {
                error_response(&ApiError::new(406, "NotAcceptable", "only application/json is served for /openapi/v2"))
            }
        }
        Route::OpenApiV3Index => json_response(200, &discovery::openapi_v3_index(&registry)),
        Route::OpenApiV3 { group, version } => match discovery::openapi_v3_group_version(&registry, &group, &version) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource")),
        },
        Route::Admin(_) => error_response(&ApiError::internal("admin route reached the API handler")),
        Route::Resource(req) => {
            if let Err(err) = authorize(shared, &req, &context.user) {
                return error_response(&err);
            }
            if req.verb == Verb::Create && req.subresource.as_deref() == Some("token") {
                return match token_request(shared, &req, content_type, body) {
                    Ok(answer) => json_response(201, &answer),
                    Err(err) => error_response(&err),
                };
            }
            match execute_as(&shared.store, &req, content_type, body, &context) {
                Ok(Reply::Json { code, body }) => json_response(code, &body),
                Ok(Reply::Watch) => {
                    let control = shared.faults.subscribe_watch_control();
                    match crate::watch::start_watch(
                        shared.store.clone(),
                        control,
                        *req,
                        facts,
                        shared.bookmark_interval,
                    ) {
                        Ok(rx) => watch_response(rx),
                        Err(err) => error_response(&err),
                    }
                }
                Err(err) => error_response(&err),
            }
        }
    }
}

fn watch_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|bytes| (bytes, rx)) })
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
