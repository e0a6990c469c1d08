//! A fake kubelet pod-resources server.
