# The image the Kubernetes manifests run (deploy/kubernetes/, docs/kubernetes.md).
# Two stages: the build, with the whole Rust toolchain, then a slim runtime that holds the binary,
# the CA certificates the API's TLS needs, and nothing else.
#   docker build -t registry.example.com/engage:$(git rev-parse --short HEAD) .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the versions of Cargo.lock, as CI tests them.
RUN cargo build --release --locked -p engage-cli \
    && strip target/release/engage

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Not root: the pods run as this user (runAsUser 10001), the volume given to it by fsGroup.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home engage
COPY --from=build /src/target/release/engage /usr/local/bin/engage
USER 10001
WORKDIR /data
ENTRYPOINT ["engage"]
CMD ["--help"]
