//! (in progress) Network selection annotations (spec §5.7–§5.9).

use crate::model::NetworkSelectionElement;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("{0}")]
    Invalid(String),
}

/// Parse `k8s.v1.cni.cncf.io/networks` (comma or JSON form); elements without a namespace get
/// `default_namespace`.
pub fn parse_network_selection(
    annotation: &str,
    default_namespace: &str,
) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
    let _ = (annotation, default_namespace);
    Ok(Vec::new())
}
