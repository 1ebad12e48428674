# syntax=docker/dockerfile:1
#
# The scrubs sidecar image. Build from the repository root:
#
#   docker build -t scrubs:0.1.0 .
#
# The build stage runs scripts/build-image-binary.sh, the same script CI runs
# (scripts/check-deploy.sh), on the Debian release the runtime image is
# based on, so the shared libraries it copies match. The runtime stage is
# distroless: glibc and libgcc, no shell, no package manager, user 65532.
# Run it with a read-only root filesystem; scrubs writes only to its data
# directory (/var/lib/scrubs, a volume).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The cargo registry and target directory are build caches, not layers.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-image-binary.sh /out

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/scrubs /usr/local/bin/scrubs
# libssl, libcrypto (TLS to Kafka, by librdkafka, and to vendors) and libz,
# which the distroless cc image does not have, from the build stage's
# Debian 12.
COPY --from=build /out/lib/ /usr/local/lib/scrubs/
ENV LD_LIBRARY_PATH=/usr/local/lib/scrubs \
    MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 9600
ENTRYPOINT ["/usr/local/bin/scrubs"]
CMD ["run", "--config", "/etc/scrubs/config/scrubs.yaml"]
