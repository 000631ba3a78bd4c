# One image with the three binaries: procforest (driver), procforest-scheduler,
# procforest-executor. Build: docker build -t procforest:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p procforest -p procforest-cluster \
 && strip target/release/procforest target/release/procforest-scheduler target/release/procforest-executor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 procforest \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin procforest
COPY --from=build /src/target/release/procforest \
                  /src/target/release/procforest-scheduler \
                  /src/target/release/procforest-executor /usr/local/bin/
# Non-root; the chart mounts writable emptyDirs at /tmp and /work (read-only root filesystem).
USER 10001:10001
WORKDIR /tmp
CMD ["procforest", "--help"]
