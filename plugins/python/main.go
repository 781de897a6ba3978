// Command runhost-plugin-python is the runhost runtime plugin for Python.
package main

import "github.com/runhost/runhost/shared"

func main() { shared.Serve(Python{}) }
