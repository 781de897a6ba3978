// Package shared is the runhost plugin SDK.
//
// A runtime plugin is a small program that knows one language runtime: which
// versions exist, which image each version runs in, and how a run request
// becomes a container spec. It never touches Docker; the host owns the engine,
// the limits and the policy, and runs whatever spec a plugin returns only after
// checking it.
//
// A plugin implements [Runtime] and calls [Serve] from main:
//
//	func main() { shared.Serve(myRuntime{}) }
//
// The host launches the plugin binary and talks to it over gRPC through
// hashicorp/go-plugin. Plugin authors never import the generated protocol code;
// the types in this package are the whole contract. Package plugintest tests a
// plugin in-process through the real gRPC path, without Docker.
package shared
