# syntax=docker/dockerfile:1
# The gateway image. Build from the repository root (the workspace and Cargo.lock):
#   docker build -f deploy/docker/gateway.Dockerfile -t closedloop/gateway .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the image builds exactly the dependency versions the tests ran with.
# The cache mounts keep the registry and build output between builds; the binary is
# copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway \
    && cp target/release/gateway /gateway

# distroless/cc: glibc, libgcc, CA certificates and nothing else (no shell). The
# `nonroot` variant runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /gateway /usr/local/bin/gateway
USER 65532:65532
# Plain HTTP (redirects), TLS, admin (/healthz, /metrics). Unprivileged ports: the
# Kubernetes manifest passes --listen/--tls-listen and its Service maps 80/443 to them.
EXPOSE 8080 8443 9000
# No HEALTHCHECK: the orchestrator probes /healthz on the admin port.
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["--config", "/etc/closedloop/regions.toml"]
