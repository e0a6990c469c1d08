//! multus-conformance
