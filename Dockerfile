# syntax=docker/dockerfile:1
#
# The multus-rs image: static multus-daemon, multus-shim, multus-install, passthru and cert-approver
# (perNodeCertificate's CSR approver, deployments/cert-approver.yml) in an empty image, at the Go image's paths (/usr/src/multus-cni/bin; install_multus -> multus-install), so
# the Go project's DaemonSet runs it unchanged.
#
# From source, for the machine's architecture (BuildKit: `docker buildx build`, or `docker build`
# where buildx is the default builder):
#   docker buildx build -t multus-rs:dev --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
# amd64 and arm64 in one manifest list (the build stage cross-compiles; nothing is emulated):
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/multus-rs:TAG --push \
#     --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
# From binaries built on the host: `cargo xtask image` builds them (reusing target/) and builds the
# last stage of this file alone, with rootfs/ in its context (xtask/src/image.rs).
#
# Build arguments: RUST_IMAGE (the build stage's Rust toolchain), PROFILE (cargo profile:
# release-small, or release to build faster), GIT_COMMIT and BUILD_DATE (the -version stamp; the
# build context has no .git, see .dockerignore).

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

# ---- build: static binaries for TARGETARCH, laid out as the image's root in /rootfs ---------------
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG PROFILE=release-small
ARG GIT_COMMIT=
ARG BUILD_DATE=
# Where the image's root file system is assembled (the last stage copies it).
ARG ROOTFS=/rootfs

# A cross linker and C compiler (ring) when the target is not the build machine's architecture.
RUN set -eu; \
    case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      amd64) rust_target=x86_64-unknown-linux-gnu; gnu=x86-64-linux-gnu; libc=amd64 ;; \
      arm64) rust_target=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; libc=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    rustup target add "$rust_target"; \
    if [ "${TARGETARCH:-$(dpkg --print-architecture)}" != "$(dpkg --print-architecture)" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gnu" "libc6-dev-$libc-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /src
COPY . .

# Static, position-dependent binaries (no loader, no libc in the image; see docs/deploy.md),
# compiled in cache mounts (the registry and target/ survive between builds), then the root
# file system: the binaries, the Go image's install_multus name, /tmp, /run and
# /var/run -> /run (runtimes pass CNI_NETNS=/var/run/netns/...).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eu; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) rust_target=x86_64-unknown-linux-gnu; cc=x86_64-linux-gnu-gcc ;; \
      arm64) rust_target=aarch64-unknown-linux-gnu; cc=aarch64-linux-gnu-gcc ;; \
      *) echo "unsupported TARGETARCH $arch: amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then \
      target_env=$(echo "$rust_target" | tr 'a-z-' 'A-Z_'); \
      export "CARGO_TARGET_${target_env}_LINKER=$cc" "CC_$(echo "$rust_target" | tr '-' '_')=$cc"; \
    fi; \
    export MULTUS_RS_GIT_COMMIT="$GIT_COMMIT" MULTUS_RS_BUILD_DATE="$BUILD_DATE"; \
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C strip=symbols" \
      cargo build --locked --profile "$PROFILE" --target "$rust_target" \
        -p multus-daemon -p multus-shim -p multus-install -p passthru -p cert-approver; \
    bin="$ROOTFS/usr/src/multus-cni/bin"; \
    mkdir -p "$bin" "$ROOTFS/run" "$ROOTFS/var" "$ROOTFS/tmp"; \
    for b in multus-daemon multus-shim multus-install passthru cert-approver; do \
      install -m 0755 "target/$rust_target/$PROFILE/$b" "$bin/$b"; \
    done; \
    ln -s multus-install "$bin/install_multus"; \
    ln -s ../run "$ROOTFS/var/run"; \
    chmod 1777 "$ROOTFS/tmp"

# ---- the image ----------------------------------------------------------------------------------
FROM scratch
LABEL org.opencontainers.image.title="multus-rs" \
      org.opencontainers.image.description="Multus CNI thick plugin (multus-daemon, multus-shim, multus-install, passthru, cert-approver)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs/ /
ENTRYPOINT ["/usr/src/multus-cni/bin/multus-daemon"]
CMD ["-config", "/etc/cni/net.d/multus.d/daemon-config.json"]
