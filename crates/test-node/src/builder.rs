//! A node described step by step, then built (and, if asked, started):
//! `NodeBuilder::default().seed(..).fake_delegates(..).started().build()`.

use serde_json::Value;

use crate::node::Node;

/// The cluster network's config, made once the node's directories exist (it may name them).
type PrimaryConfig = Box<dyn FnOnce(&Node) -> Value>;

/// Objects made once the node's directories exist (a NAD's config may name them).
type SeedObjects = Box<dyn FnOnce(&Node) -> Vec<Value>>;

/// What a [`Node`] is made of. Everything is optional: the default is an empty API server,
/// no delegates, no kubelet, the daemon not started.
#[derive(Default)]
pub struct NodeBuilder {
    seed: Vec<Value>,
    seed_with: Vec<SeedObjects>,
    deny: Vec<String>,
    real: Vec<String>,
    fakes: Vec<String>,
    primary: Option<(String, PrimaryConfig)>,
    kubelet: Option<Vec<String>>,
    config: Vec<(String, Value)>,
    start: bool,
}

impl NodeBuilder {
    /// Objects the API server starts with.
    pub fn seed(mut self, objects: impl IntoIterator<Item = Value>) -> Self {
        self.seed.extend(objects);
        self
    }

    /// As [`NodeBuilder::seed`], the objects made from the node (stored before anything runs).
    pub fn seed_with(mut self, objects: impl FnOnce(&Node) -> Vec<Value> + 'static) -> Self {
        self.seed_with.push(Box::new(objects));
        self
    }

    /// RBAC-like deny rules (`verb:resource`).
    pub fn deny(mut self, rules: &[&str]) -> Self {
        self.deny.extend(rules.iter().map(|r| r.to_string()));
        self
    }

    /// Debian's plugins (from /usr/lib/cni) in the node's `bin/`.
    pub fn real_delegates(mut self, names: &[&str]) -> Self {
        self.real.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// fake-cni under each of `names` in the node's `bin/`.
    pub fn fake_delegates(mut self, names: &[&str]) -> Self {
        self.fakes.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// The cluster network's config, written as `net.d/<file>`.
    pub fn primary(self, file: &str, config: Value) -> Self {
        self.primary_with(file, move |_| config)
    }

    /// As [`NodeBuilder::primary`], the config made from the node (e.g. a record directory
    /// under [`Node::path`]).
    pub fn primary_with(mut self, file: &str, config: impl FnOnce(&Node) -> Value + 'static) -> Self {
        self.primary = Some((file.to_string(), Box::new(config)));
        self
    }

    /// Run `fake-kubelet` with `args`; the daemon reads devices from it.
    pub fn fake_kubelet(mut self, args: &[String]) -> Self {
        self.kubelet = Some(args.to_vec());
        self
    }

    /// One top-level key of the daemon's config.
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.config.push((key.to_string(), value));
        self
    }

    /// Start the daemon (and wait for it to be ready) as the last step of [`NodeBuilder::build`].
    pub fn started(mut self) -> Self {
        self.start = true;
        self
    }

    pub fn build(self) -> Node {
        let deny: Vec<&str> = self.deny.iter().map(String::as_str).collect();
        let mut node = Node::with_deny(self.seed, &deny);
        for objects in self.seed_with {
            for object in objects(&node) {
                node.mock.store().create(object).expect("seed object");
            }
        }
        let real: Vec<&str> = self.real.iter().map(String::as_str).collect();
        let fakes: Vec<&str> = self.fakes.iter().map(String::as_str).collect();
        if !real.is_empty() || !fakes.is_empty() {
            node.install_plugins(&real, &fakes);
        }
        if let Some((file, config)) = self.primary {
            let config = config(&node);
            node.write_primary(&file, &config);
        }
        for (key, value) in self.config {
            node.daemon_config[key] = value;
        }
        if let Some(args) = &self.kubelet {
            node.start_fake_kubelet(args);
        }
        if self.start {
            node.start_daemon();
        }
        node
    }
}
