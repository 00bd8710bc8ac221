# syntax=docker/dockerfile:1
# usher in a container: a Rust build stage and a slim Debian runtime.
#
#   docker build -t usher .
#   docker run --rm -p 8080:8080 -e USHER_ISSUER=http://localhost:8080 \
#       -v usher-data:/var/lib/usher usher
#
# The working directory /var/lib/usher holds the SQLite file (usher.db, the default
# store) and the signing keys (jwks/). Keep it on a volume, or set USHER_DATABASE_URL
# and mount only /var/lib/usher/jwks (docker-compose.yml does that).

FROM rust:1.95-bookworm AS builder
# josekit links OpenSSL: it needs the headers and pkg-config at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p usher \
    && install -m 0755 target/release/usher /usr/local/bin/usher

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
# A system user without a login shell; the data directory and the keys directory belong
# to it, so that volumes mounted on them start with the right owner.
RUN groupadd --system --gid 10001 usher \
    && useradd --system --uid 10001 --gid usher --home-dir /var/lib/usher \
       --shell /usr/sbin/nologin usher \
    && install -d -o usher -g usher -m 0750 /var/lib/usher \
    && install -d -o usher -g usher -m 0700 /var/lib/usher/jwks
COPY --from=builder /usr/local/bin/usher /usr/local/bin/usher
USER usher
WORKDIR /var/lib/usher
VOLUME ["/var/lib/usher"]
ENV USHER_BIND=0.0.0.0:8080
EXPOSE 8080
# `usher healthcheck` asks /healthz on the configured bind address (127.0.0.1 when the
# bind address is 0.0.0.0) and exits 0 when it answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["usher", "healthcheck"]
ENTRYPOINT ["usher"]
CMD ["serve"]
