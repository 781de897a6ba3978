// Command runhost-plugin-dockerfile is the runhost runtime plugin that builds
// a Dockerfile and runs the image (the seed's build_and_run).
package main

import "github.com/runhost/runhost/shared"

func main() { shared.Serve(Dockerfile{}) }
