// Package e2e holds the end-to-end tests: the host as cmd/host wires it,
// the real plugin binaries, the real Docker engine and the real images,
// driven over HTTP. Each test gets its own host instance and checks that no
// container of that instance is left behind.
package e2e
