//! kube-mock
