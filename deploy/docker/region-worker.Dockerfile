# syntax=docker/dockerfile:1
# The region worker image (one image for every region; the region is an argument).
# Build from the repository root (the workspace and Cargo.lock):
#   docker build -f deploy/docker/region-worker.Dockerfile -t closedloop/region-worker .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the image builds exactly the dependency versions the tests ran with. The
# SQL migrations are embedded in the binary, so nothing else is copied out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p region-worker \
    && cp target/release/region-worker /region-worker

# distroless/cc: glibc, libgcc, CA certificates and nothing else (no shell). The
# `nonroot` variant runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /region-worker /usr/local/bin/region-worker
USER 65532:65532
# Public (behind the gateway only) and admin (/healthz, /readyz, /metrics).
EXPOSE 8081 9091
# No HEALTHCHECK: the orchestrator probes /healthz and /readyz on the admin port.
# Arguments name the command and the region, e.g.
#   serve --config /etc/closedloop/regions.toml --region us
ENTRYPOINT ["/usr/local/bin/region-worker"]
