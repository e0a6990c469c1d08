//! Stamps the git commit and build date that `-version` prints.

fn main() {
    build_info::stamp();
}
