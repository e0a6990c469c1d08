//! The pod's device IDs per resource name (§5.10.1), and their allocation to networks.

use std::collections::{BTreeMap, BTreeSet};

/// A failed device lookup, with the stage the reference names in its error chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if *.client { "failed to get a ResourceClient instance" } else { "failed to get resourceMap from ResourceClient" })]
pub struct DeviceLookupError {
    /// `true`: the client could not be built (kubelet socket, checkpoint file); `false`: the
    /// lookup itself failed (pod arguments, DRA).
    pub client: bool,
    /// What failed.
    pub message: String,
}

impl DeviceLookupError {
    /// The device source could not be reached or read.
    pub fn client(message: impl Into<String>) -> Self {
        Self { client: true, message: message.into() }
    }

    /// The source answered but the pod's devices could not be determined.
    pub fn resource_map(message: impl Into<String>) -> Self {
        Self { client: false, message: message.into() }
    }
}

/// Device IDs allocated to the pod per resource name (§5.10.1). The daemon implements it over
/// kubelet/DRA (built lazily, once per request); an error fails the resolution.
pub trait DeviceIdSource {
    /// All device IDs of `resource_name` for the pod, in allocation order (sorted).
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError>;
}

impl DeviceIdSource for BTreeMap<String, Vec<String>> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(self.get(resource_name).cloned().unwrap_or_default())
    }
}

/// Devices looked up beforehand; a failed lookup fails the resolution where the first network
/// asks for a device, with the reference's error chain.
impl DeviceIdSource for Result<BTreeMap<String, Vec<String>>, DeviceLookupError> {
    fn device_ids(&mut self, resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        match self {
            Ok(map) => map.device_ids(resource_name),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Answers no device and notes whether any was asked for: a first resolution with it tells
/// whether the pod's devices must be looked up at all (the reference looks them up lazily, only
/// for pods with a network that has a resource name).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceProbe {
    /// Some network asked for a device.
    pub asked: bool,
}

impl DeviceIdSource for DeviceProbe {
    fn device_ids(&mut self, _resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        self.asked = true;
        Ok(Vec::new())
    }
}

/// No devices at all (STATUS/GC, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDevices;

impl DeviceIdSource for NoDevices {
    fn device_ids(&mut self, _resource_name: &str) -> Result<Vec<String>, DeviceLookupError> {
        Ok(Vec::new())
    }
}

/// Hands out each resource's IDs in order, never twice.
pub(super) struct DeviceAllocator<'a> {
    pub(super) source: &'a mut dyn DeviceIdSource,
    pub(super) ids: BTreeMap<String, Vec<String>>,
    pub(super) used: BTreeMap<String, BTreeSet<String>>,
}

impl DeviceAllocator<'_> {
    pub(super) fn allocate(&mut self, resource: &str) -> Result<Option<String>, DeviceLookupError> {
        if !self.ids.contains_key(resource) {
            let ids = self.source.device_ids(resource)?;
            self.ids.insert(resource.to_string(), ids);
        }
        let used = self.used.entry(resource.to_string()).or_default();
        let id = self.ids[resource].iter().find(|id| !used.contains(*id)).cloned();
        if let Some(id) = &id {
            used.insert(id.clone());
        }
        Ok(id)
    }

    pub(super) fn release(&mut self, resource: &str, id: &str) {
        if let Some(used) = self.used.get_mut(resource) {
            used.remove(id);
        }
    }
}
