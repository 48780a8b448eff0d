# Passgate: one image with the three binaries (passgate-api, passgate-workers, passgate).
#
#   docker build -t passgate:local .
#   docker run --rm passgate:local passgate --help
#
# docker-compose.yml builds this image and runs each binary as its own service.

# ---------------------------------------------------------------------------- build
FROM rust:1.95-bookworm AS builder

WORKDIR /src
# The whole workspace (see .dockerignore): the crates, Cargo.toml/Cargo.lock and migrations/
# (embedded into the binaries at compile time).
COPY . .

# BuildKit cache mounts keep the registry and target/ between builds; the binaries are copied
# out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/passgate-api target/release/passgate-workers target/release/passgate /out/

# ---------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 passgate \
    && useradd --system --uid 10001 --gid passgate --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin passgate

COPY --from=builder /out/passgate-api /out/passgate-workers /out/passgate /usr/local/bin/

USER passgate:passgate
WORKDIR /tmp

# 8080: the API (PASSGATE_API_BIND); 9090: the workers' health and metrics (PASSGATE_WORKERS_BIND)
EXPOSE 8080 9090

CMD ["passgate-api"]
