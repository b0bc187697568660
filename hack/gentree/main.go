// Command gentree writes a synthetic Kustomize tree for the render
// benchmarks (hack/bench-render.sh) and prints the overlay folders to render,
// one a line, relative to -out.
//
//	go run ./hack/gentree -out DIR -apps 200 -objects 20
//	go run ./hack/gentree -out DIR -kind realworld
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gentree"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gentree", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write the tree into (created if missing)")
	kind := fs.String("kind", "apps", "what to generate: apps (many small apps) or realworld (one platform-sized overlay set)")
	apps := fs.Int("apps", 200, "number of apps (-kind apps)")
	objects := fs.Int("objects", 20, "objects each app renders to (-kind apps)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("no -out folder given; pass -out DIR")
	}
	var overlays []string
	var err error
	switch *kind {
	case "apps":
		overlays, err = gentree.Tree(*out, *apps, *objects)
	case "realworld":
		overlays, err = gentree.RealWorld(*out)
	default:
		return fmt.Errorf("unknown -kind %q: use apps or realworld", *kind)
	}
	if err != nil {
		return err
	}
	for _, o := range overlays {
		fmt.Println(o)
	}
	return nil
}
