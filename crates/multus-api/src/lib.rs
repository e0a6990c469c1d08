//! multus-api
