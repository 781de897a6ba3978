// Package deploytest checks the deployment files at the root of the
// repository without starting anything: docker-compose.yml (runhost with
// the machine's Docker engine) and docker-compose.yml + docker-compose.dind.yml
// (runhost with a Docker-in-Docker daemon over mutual TLS, and code-server)
// are loaded and merged with the compose-spec loader the Docker Compose CLI
// uses, and the properties the deployment relies on are asserted: only the
// DinD daemon is privileged, no daemon port is published, the workspace is
// one named volume seen at /app/workspace, /home/coder/workspace and
// /workspaces, the host reaches the daemon over TLS and never through the
// machine's socket, the certificates go only where they are needed, and
// every variable of .env.example is documented in README.md.
//
// The package has tests only; it needs no network, no Docker engine and no
// compose CLI.
package deploytest
