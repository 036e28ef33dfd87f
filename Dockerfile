# authgate container image: build on Debian 12 (bookworm), run on bookworm-slim so the
# runtime has the exact system OpenSSL (libssl3) and xmlsec1/libxml2 (SAML) the binary was linked against
# (OPENSSL_NO_VENDOR=1 in .cargo/config.toml: one OpenSSL, the system's).
# This project's CI has no container engine: tests/runtime_image.rs checks that the build
# stage's context resolves and its toolchain is new enough for Cargo.lock, and runs the
# binary on exactly the runtime stage's packages.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make pkg-config cmake libssl-dev \
      libxml2-dev libxmlsec1-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
# [patch.crates-io] in Cargo.toml: the patched pingora crates and samael.
COPY vendor vendor
# Cargo.toml declares the bench target; its source must exist for the manifest to load.
COPY benches benches
RUN cargo build --release --locked --bin authgate \
 && strip target/release/authgate

FROM debian:bookworm-slim
# ldd target/release/authgate: libssl.so.3, libcrypto.so.3, libxmlsec1(-openssl), libxml2,
# libgcc_s.so.1, libm, libc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libxml2 libxmlsec1 libxmlsec1-openssl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 authgate \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin authgate
COPY --from=build /src/target/release/authgate /usr/local/bin/authgate
COPY gateway.yaml /etc/authgate/gateway.yaml
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/authgate"]
CMD ["run", "-c", "/etc/authgate/gateway.yaml"]
