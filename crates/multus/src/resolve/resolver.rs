//! The state of one resolution: the settings, the pod, its NADs and devices, and what it has
//! to report.

use super::devices::{DeviceAllocator, DeviceIdSource};
use super::settings::ResolveSettings;
use crate::delegate::Delegate;
use crate::error::{ErrorKind, MultusError, PodRef, Warning};
use crate::model::{NadLookup, PodInfo};
use std::collections::BTreeMap;

/// The most bytes of delegate config the NetworkAttachmentDefinitions of one pod may produce
/// together (their configs with the selection's `cni-args` injected). The API server stores a NAD
/// of up to about 1.5 MB and a pod may name up to 128 networks — a NAD repeatedly, or a conflist
/// that gets the `cni-args` in every plugin — so without a limit one pod could make the daemon
/// hold hundreds of MB. Real pods use a few KB.
pub const MAX_POD_NAD_CONFIG_BYTES: usize = 4 << 20;

/// The delegate list of a request and the events/notes to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The delegates in execution order, the master first.
    pub delegates: Vec<Delegate>,
    /// Events and log lines to emit whatever the outcome.
    pub warnings: Vec<Warning>,
}

/// An internal failure before the reference's outer prefix is applied.
pub(super) struct Fail {
    pub(super) network: Option<String>,
    pub(super) message: String,
}

impl Fail {
    pub(super) fn new(network: Option<&str>, message: impl Into<String>) -> Self {
        Self { network: network.map(str::to_string), message: message.into() }
    }
}

pub(super) struct Resolver<'a> {
    pub(super) settings: &'a ResolveSettings,
    pub(super) who: Option<&'a PodRef>,
    pub(super) pod: Option<&'a PodInfo>,
    pub(super) nads: &'a dyn NadLookup,
    pub(super) devices: DeviceAllocator<'a>,
    pub(super) warnings: Vec<Warning>,
    /// Bytes of NAD-based delegate config still allowed ([`MAX_POD_NAD_CONFIG_BYTES`]).
    pub(super) nad_bytes_left: usize,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        settings: &'a ResolveSettings,
        who: Option<&'a PodRef>,
        pod: Option<&'a PodInfo>,
        nads: &'a dyn NadLookup,
        devices: &'a mut dyn DeviceIdSource,
    ) -> Self {
        Self {
            settings,
            who,
            pod,
            nads,
            devices: DeviceAllocator { source: devices, ids: BTreeMap::new(), used: BTreeMap::new() },
            warnings: Vec::new(),
            nad_bytes_left: MAX_POD_NAD_CONFIG_BYTES,
        }
    }

    pub(super) fn error(&mut self, kind: ErrorKind, fail: Fail, prefix: &str) -> MultusError {
        let message = format!("{prefix}{}", fail.message);
        let e = match fail.network {
            Some(n) => MultusError::command_for_network(self.who, kind, n, message),
            None => MultusError::command(self.who, kind, message),
        };
        e.with_warnings(std::mem::take(&mut self.warnings))
    }

    pub(super) fn finish(self, delegates: Vec<Delegate>) -> Resolved {
        Resolved { delegates, warnings: self.warnings }
    }
}
