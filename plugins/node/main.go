// Command runhost-plugin-node is the runhost runtime plugin for JavaScript on Node.js.
package main

import "github.com/runhost/runhost/shared"

func main() { shared.Serve(Node{}) }
