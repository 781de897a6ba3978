// Command runhost-plugin-shell is the runhost runtime plugin for bash scripts.
package main

import "github.com/runhost/runhost/shared"

func main() { shared.Serve(Shell{}) }
