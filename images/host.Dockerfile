# runhost's host image built offline from an already built bin/ (make build),
# for machines that reach no registry: scripts/e2e-k8s.sh uses it for the
# Kubernetes deploy smoke test. The build context is a directory holding
# host, runhost-init, runhost-egress and plugins/ (the script copies bin/).
# Base: the shell runtime image (Debian bookworm), which `make images`
# builds offline; bin/host needs its glibc.
#
#   docker build -f images/host.Dockerfile -t runhost/host:latest CONTEXT
FROM runhost/shell:bookworm
COPY host runhost-init runhost-egress /usr/local/bin/
COPY plugins/ /usr/local/lib/runhost/plugins/
ENV RUNHOST_PLUGIN_DIR=/usr/local/lib/runhost/plugins \
    RUNHOST_INIT_PATH=/usr/local/bin/runhost-init \
    RUNHOST_EGRESS_PATH=/usr/local/bin/runhost-egress \
    RUNHOST_ADDR=0.0.0.0:8080
# On Kubernetes the host needs no privilege at all: it talks to the API
# server, not to a Docker socket, and keeps no files.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/host"]
