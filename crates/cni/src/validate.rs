//! Name rules for container IDs, network names and interface names (cni.md §4.1),
//! with the error codes and messages of the Go `skel`/libcni.

use crate::error::{CniError, code};

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`
pub fn matches_name_pattern(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty() && bytes[0].is_ascii_alphanumeric() && bytes.iter().all(|b| is_name_char(*b))
}

/// Container IDs: non-empty (code 3 otherwise), then the name pattern (code 4).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(code::UNKNOWN_CONTAINER, "missing containerID"));
    }
    if !matches_name_pattern(id) {
        return Err(CniError::with_details(
            code::INVALID_ENVIRONMENT_VARIABLES,
            "invalid characters in containerID",
            id,
        ));
    }
    Ok(())
}

/// Network names: non-empty and the name pattern (code 7).
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "missing network name"));
    }
    if !matches_name_pattern(name) {
        return Err(CniError::with_details(
            code::INVALID_NETWORK_CONFIG,
            "invalid characters found in network name",
            name,
        ));
    }
    Ok(())
}

/// Maximum interface name length in bytes (Linux IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Interface names: non-empty, ≤ 15 bytes, not `.`/`..`, no `/`, `:` or whitespace (code 4).
pub fn validate_interface_name(ifname: &str) -> Result<(), CniError> {
    let fail = |msg: &str| Err(CniError::with_details(code::INVALID_ENVIRONMENT_VARIABLES, msg, ifname));
    if ifname.is_empty() {
        return fail("interface name is empty");
    }
    if ifname.len() > MAX_IFNAME_LEN {
        return fail("interface name is too long");
    }
    if ifname == "." || ifname == ".." {
        return fail("interface name is . or ..");
    }
    if ifname.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return fail("interface name contains / or : or whitespace characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        assert!(validate_container_id("abc-1.2_3").is_ok());
        assert_eq!(validate_container_id("").unwrap_err().code, 3);
        assert_eq!(validate_container_id("-bad").unwrap_err().code, 4);
        assert_eq!(validate_container_id("a/b").unwrap_err().code, 4);
    }

    #[test]
    fn interface_names() {
        assert!(validate_interface_name("eth0").is_ok());
        assert!(validate_interface_name("net1@x").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert_eq!(validate_interface_name(bad).unwrap_err().code, 4, "{bad:?}");
        }
    }

    #[test]
    fn network_names() {
        assert!(validate_network_name("mock-cluster-net").is_ok());
        assert_eq!(validate_network_name("bad/name").unwrap_err().code, 7);
        assert_eq!(validate_network_name("").unwrap_err().code, 7);
    }
}
