//! The kubelet device manager's checkpoint file, the fallback when the pod-resources socket does
//! not exist (spec §5.10.1):
//!
//! ```json
//! {"Data":{"PodDeviceEntries":[{"PodUID":"…","ContainerName":"c","ResourceName":"r",
//!          "DeviceIDs":{"<numa node>":["id", …]},"AllocResp":"<base64>"}],
//!          "RegisteredDevices":{"r":["id", …]}},
//!  "Checksum":123}
//! ```
//!
//! Entries are matched by pod UID; all of a pod's containers and NUMA nodes contribute.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::{DeviceError, DeviceMap, append_ids};

/// Default checkpoint path.
pub const DEFAULT_CHECKPOINT_PATH: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// A parsed checkpoint (the parts Multus reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Checkpoint {
    /// The device manager's state.
    #[serde(rename = "Data", default, deserialize_with = "null_as_default")]
    pub data: CheckpointData,
    /// The kubelet's checksum of `Data` (not verified, as in the reference).
    #[serde(rename = "Checksum", default)]
    pub checksum: u64,
}

/// `Data` of the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CheckpointData {
    /// One entry per pod, container and resource.
    #[serde(rename = "PodDeviceEntries", default, deserialize_with = "null_as_default")]
    pub pod_device_entries: Vec<PodDevicesEntry>,
}

/// Devices of one resource assigned to one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodDevicesEntry {
    /// The pod's UID.
    #[serde(rename = "PodUID", default)]
    pub pod_uid: String,
    /// The container name.
    #[serde(rename = "ContainerName", default)]
    pub container_name: String,
    /// The device-plugin resource name.
    #[serde(rename = "ResourceName", default)]
    pub resource_name: String,
    /// Device IDs per NUMA node (`-1` when the plugin reports no topology).
    #[serde(rename = "DeviceIDs", default, deserialize_with = "null_as_default")]
    pub device_ids: BTreeMap<i64, Vec<String>>,
}

/// Go's encoding/json leaves a field at its zero value when the JSON has `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Checkpoint {
    /// Parses checkpoint JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        // serde would read a JSON array as a struct; Go's encoding/json (and so the reference)
        // refuses it.
        let data = &value["Data"];
        if !value.is_object() || !(data.is_object() || data.is_null()) {
            return Err(serde_json::Error::custom("the checkpoint and its Data must be JSON objects"));
        }
        serde_json::from_value(value)
    }

    /// Reads and parses the checkpoint at `path`.
    pub fn read(path: &Path) -> Result<Self, DeviceError> {
        let bytes =
            std::fs::read(path).map_err(|source| DeviceError::CheckpointRead { path: path.to_path_buf(), source })?;
        Self::parse(&bytes).map_err(|source| DeviceError::CheckpointParse { path: path.to_path_buf(), source })
    }

    /// Device IDs of the pod with UID `pod_uid`, per resource, sorted.
    pub fn device_map(&self, pod_uid: &str) -> Result<DeviceMap, DeviceError> {
        if pod_uid.is_empty() {
            return Err(DeviceError::EmptyPodUid);
        }
        let mut map = DeviceMap::new();
        for entry in self.data.pod_device_entries.iter().filter(|e| e.pod_uid == pod_uid) {
            append_ids(&mut map, &entry.resource_name, entry.device_ids.values().flatten().cloned());
        }
        crate::sort_device_ids(&mut map);
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> Vec<u8> {
        json!({
            "Data": {
                "PodDeviceEntries": [
                    {"PodUID": "uid-a", "ContainerName": "c1", "ResourceName": "intel.com/sriov",
                     "DeviceIDs": {"1": ["0000:af:06.3"], "0": ["0000:af:06.1", "0000:af:06.0"]},
                     "AllocResp": "CiIKFlNSSU9WLU5FVERFVklDRQ=="},
                    {"PodUID": "uid-a", "ContainerName": "c2", "ResourceName": "intel.com/sriov",
                     "DeviceIDs": {"-1": ["0000:af:06.2"]}, "AllocResp": null},
                    {"PodUID": "uid-a", "ContainerName": "c2", "ResourceName": "example.com/rdma",
                     "DeviceIDs": {"-1": ["mlx5_3"]}},
                    {"PodUID": "uid-b", "ContainerName": "c", "ResourceName": "intel.com/sriov",
                     "DeviceIDs": {"0": ["0000:af:07.0"]}}
                ],
                "RegisteredDevices": {"intel.com/sriov": ["0000:af:06.0", "0000:af:06.1"]}
            },
            "Checksum": 2933478416u64
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn entries_are_mapped_by_pod_uid_and_resource_and_sorted() {
        let checkpoint = Checkpoint::parse(&sample()).unwrap();
        assert_eq!(checkpoint.checksum, 2933478416);
        let map = checkpoint.device_map("uid-a").unwrap();
        assert_eq!(
            map,
            DeviceMap::from([
                ("example.com/rdma".into(), vec!["mlx5_3".into()]),
                (
                    "intel.com/sriov".into(),
                    vec!["0000:af:06.0".into(), "0000:af:06.1".into(), "0000:af:06.2".into(), "0000:af:06.3".into()]
                ),
            ])
        );
        assert_eq!(checkpoint.device_map("uid-b").unwrap()["intel.com/sriov"], ["0000:af:07.0"]);
        assert!(checkpoint.device_map("unknown").unwrap().is_empty());
        assert!(matches!(checkpoint.device_map(""), Err(DeviceError::EmptyPodUid)));
    }

    #[test]
    fn nulls_and_missing_sections_read_as_empty() {
        // As Go's encoding/json: absent or null fields are zero values.
        for text in [r#"{"Data":{"PodDeviceEntries":null},"Checksum":0}"#, r#"{"Data":{}}"#, r#"{"Checksum":1}"#, "{}"]
        {
            let checkpoint = Checkpoint::parse(text.as_bytes()).unwrap();
            assert!(checkpoint.device_map("uid").unwrap().is_empty(), "{text}");
        }
    }

    #[test]
    fn bad_json_and_bad_shapes_are_errors() {
        for text in [
            "",
            "not json",
            "[]",
            r#"{"Data":[]}"#,
            // The pre-1.20 kubelet's flat list is not the format the reference reads.
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u","ResourceName":"r","DeviceIDs":["a"]}]}}"#,
            // NUMA node keys are integers.
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u","ResourceName":"r","DeviceIDs":{"x":["a"]}}]}}"#,
        ] {
            assert!(Checkpoint::parse(text.as_bytes()).is_err(), "{text}");
        }
    }

    #[test]
    fn read_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let err = Checkpoint::read(&missing).unwrap_err();
        assert!(matches!(err, DeviceError::CheckpointRead { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "{").unwrap();
        assert!(matches!(Checkpoint::read(&bad), Err(DeviceError::CheckpointParse { .. })));
        let good = dir.path().join("good");
        std::fs::write(&good, sample()).unwrap();
        assert_eq!(Checkpoint::read(&good).unwrap().device_map("uid-b").unwrap().len(), 1);
    }

    proptest! {
        /// Whatever the NUMA layout and entry order, a pod gets exactly its own IDs, sorted.
        #[test]
        fn a_pod_gets_exactly_its_ids_sorted(
            entries in proptest::collection::vec(
                (0..3usize, 0..2usize, -1i64..3, proptest::collection::vec("[a-f0-9:.]{1,12}", 0..4)),
                0..12,
            )
        ) {
            let uids = ["uid-0", "uid-1", "uid-2"];
            let resources = ["r/a", "r/b"];
            let checkpoint = Checkpoint {
                data: CheckpointData {
                    pod_device_entries: entries
                        .iter()
                        .map(|(pod, res, numa, ids)| PodDevicesEntry {
                            pod_uid: uids[*pod].into(),
                            container_name: "c".into(),
                            resource_name: resources[*res].into(),
                            device_ids: BTreeMap::from([(*numa, ids.clone())]),
                        })
                        .collect(),
                },
                checksum: 0,
            };
            let map = checkpoint.device_map("uid-0").unwrap();
            for resource in resources {
                let mut expected: Vec<String> = entries
                    .iter()
                    .filter(|(pod, res, _, _)| *pod == 0 && resources[*res] == resource)
                    .flat_map(|(_, _, _, ids)| ids.clone())
                    .collect();
                expected.sort();
                let has_entry = entries.iter().any(|(pod, res, _, _)| *pod == 0 && resources[*res] == resource);
                prop_assert_eq!(map.get(resource).cloned(), has_entry.then_some(expected));
            }
        }
    }
}
