// Command runhost-plugin-ruby is an out-of-tree runhost runtime plugin for
// Ruby. It lives in its own Go module and uses nothing of runhost but the
// plugin SDK, github.com/runhost/runhost/shared: a team can copy this
// directory into its own repository and build it there.
package main

import "github.com/runhost/runhost/shared"

func main() { shared.Serve(Ruby{}) }
