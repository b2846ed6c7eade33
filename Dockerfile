# sfx container image.
#
#   docker build -t sfx .
#   docker run -d --name sfx -p 8000:8000 -v sfx-data:/data sfx
#
# With a config file (its `listen` and `data_dir` are overridden: the container always serves
# 0.0.0.0:8000 and stores in /data):
#
#   docker run -d -p 8000:8000 -v sfx-data:/data \
#     -v "$PWD/sfx.toml:/etc/sfx/sfx.toml:ro" -e SFX_CONFIG=/etc/sfx/sfx.toml sfx
#
# Without [[secrets]] in a config, sfx generates an operator secret on first start, keeps it in
# /data and prints it once (`docker logs sfx`). /data must be writable by uid 10001 (a named
# volume is; for a bind mount, `chown 10001:10001` the host directory).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY assets ./assets
RUN cargo build --release --locked --bin sfx \
 && install -m 0755 target/release/sfx /usr/local/bin/sfx

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sfx \
 && useradd --system --uid 10001 --gid sfx --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin sfx \
 && mkdir -p /data \
 && chown sfx:sfx /data \
 && chmod 0700 /data
COPY --from=build /usr/local/bin/sfx /usr/local/bin/sfx
USER sfx
WORKDIR /data
VOLUME /data
EXPOSE 8000
# A config file is named with `-e SFX_CONFIG=/path/in/container.toml` (read by `sfx serve`;
# leave it unset, not empty, to run on the embedded defaults) or `--config PATH` after the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["sfx", "serve", "--listen", "0.0.0.0:8000", "--data-dir", "/data"]
