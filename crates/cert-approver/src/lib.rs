//! `cert-approver`: the controller that completes `perNodeCertificate`.
//!
//! With `perNodeCertificate.enabled`, each node's multus-daemon files a
//! CertificateSigningRequest for `system:multus:<node>` and waits for the certificate;
//! nothing in a cluster approves it by default. This controller approves exactly those
//! requests and denies, with a reason, the ones that claim another node or ask for more than
//! a client certificate ([`judge`] has the rules, as pure functions; [`controller`] the
//! watch and the writes to the `approval` subresource). The signer
//! (`kubernetes.io/kube-apiserver-client`, kube-controller-manager's) then issues the
//! certificate.

pub mod controller;
pub mod judge;
pub mod request;

pub use controller::{ApproverError, Decision, run};
pub use judge::{Denial, Ignored, Verdict, judge, require_node};
