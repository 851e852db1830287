# syntax=docker/dockerfile:1
# The `ballast` binary (every reconciler, the simulator, explain) in a static, non-root image:
#
#   docker build -t ballast:0.1.0 .                                # kwok provider
#   docker build --build-arg FEATURES=aws -t ballast:0.1.0-aws .   # with the EC2 provider
#
# Stage 1 builds a statically linked musl binary from the locked dependencies (TLS is rustls with
# ring: no OpenSSL). Stage 2 is distroless/static: CA certificates, user `nonroot` (65532), no
# shell. The Helm chart (deploy/helm/ballast) runs it as 65532 with a read-only root filesystem.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-alpine AS build
# ring's C and assembly parts
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
ARG FEATURES=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ballast ${FEATURES:+--features "$FEATURES"} \
    && install -D -m 0755 target/release/ballast /out/ballast

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ballast /usr/local/bin/ballast
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ballast"]
CMD ["--help"]
