//! multus
