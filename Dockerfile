# runhost's host image, for machines that reach a registry (docs/setup.md).
# Offline machines run the host with `make run` instead; the runtime images
# come from `make images` either way (this image contains none of them).
#
#   docker build -t runhost/host:latest .
#
# The host talks to a Docker engine it does not contain:
#   - docker-compose.yml: the machine's engine, through /var/run/docker.sock;
#   - docker-compose.yml + docker-compose.dind.yml: a Docker-in-Docker daemon,
#     over mutual TLS on tcp://dind:2376 (client certificate in /certs/client).
#
# It runs as root inside the container, on purpose:
#   - with the socket, any process that can open it is root on the machine
#     anyway, and the socket is root:docker 0660 with a docker gid that differs
#     from machine to machine, so a non-root user would buy nothing there;
#   - in both deployments the host gives every workspace session directory to
#     the run user (RUNHOST_RUN_USER, 1000:1000) with fchown, and reads and
#     removes files that runs (uid 1000) wrote, which needs CAP_CHOWN and
#     CAP_DAC_OVERRIDE. A non-root host user would create session directories
#     the runs cannot write.
# The compose files narrow that root: every capability dropped except CHOWN,
# DAC_OVERRIDE and FOWNER, and no-new-privileges. Untrusted code never runs in
# this container: it runs in the engine's containers as 1000:1000 with no
# capabilities (README, "What every run gets").

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same binaries as `make build`: the host; the init program and the egress
# proxy static, since they run inside the runtime images; one plugin per
# directory under plugins/ (python, node, shell, dockerfile, and any added
# later).
RUN set -eux; \
    go build -trimpath -o /out/host ./cmd/host; \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/runhost-init ./cmd/runhost-init; \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/runhost-egress ./cmd/runhost-egress; \
    mkdir -p /out/plugins; \
    for dir in plugins/*/; do \
      name=$(basename "$dir"); \
      go build -trimpath -o "/out/plugins/runhost-plugin-$name" "./plugins/$name"; \
    done; \
    ls -l /out /out/plugins

FROM debian:bookworm-slim
# ca-certificates: the host's own TLS (the DinD daemon's certificate is checked
# against /certs/client/ca.pem, not this store, but a RUNHOST_CA_BUNDLE such
# as /etc/ssl/certs/ca-certificates.crt comes from here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /out/host /out/runhost-init /out/runhost-egress /usr/local/bin/
COPY --from=build /out/plugins/ /usr/local/lib/runhost/plugins/

# RUNHOST_ADDR listens on every interface of the container so that a published
# port reaches it; the compose files publish it on the machine's loopback only.
# On a non-loopback address the host refuses to start without API keys unless
# RUNHOST_ALLOW_UNAUTHENTICATED=true (the compose files set it; see
# docs/setup.md for what that exposes).
ENV RUNHOST_PLUGIN_DIR=/usr/local/lib/runhost/plugins \
    RUNHOST_INIT_PATH=/usr/local/bin/runhost-init \
    RUNHOST_EGRESS_PATH=/usr/local/bin/runhost-egress \
    RUNHOST_ADDR=0.0.0.0:8080

EXPOSE 8080

# There is no curl in bookworm-slim (and no point installing one): bash opens
# the TCP connection itself (/dev/tcp), sends a bare HTTP/1.0 GET /healthz and
# reads the status line. /healthz is 200 while the process serves; /readyz
# (engine and plugins) is left to monitoring, so a slow engine does not get
# the host restarted.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]

# The host stops on SIGTERM, letting runs finish for RUNHOST_SHUTDOWN_TIMEOUT_MS
# (30 s by default): give `docker stop` longer than that (the compose files
# set stop_grace_period).
ENTRYPOINT ["/usr/local/bin/host"]
