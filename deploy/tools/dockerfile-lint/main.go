// Command dockerfile-lint runs BuildKit's Dockerfile checks (the rules of
// `docker build --check`, github.com/moby/buildkit dockerfile2llb) on
// Dockerfiles without a Docker engine or a registry: base images are
// answered with an empty linux/amd64 image config instead of being pulled,
// so every rule that reads the Dockerfile runs; those that need the real
// base image's metadata see an empty one.
//
// Usage: dockerfile-lint FILE...; any warning or error fails (exit 1).
// Experimental rules are enabled too.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	digest "github.com/opencontainers/go-digest"
)

// offline answers base image lookups without a registry.
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`)
	return ref, digest.FromBytes([]byte(ref)), cfg, nil
}

// Lint returns BuildKit's findings for one Dockerfile.
func Lint(name string, dt []byte) (*lint.LintResults, error) {
	sm := llb.NewSourceMap(nil, name, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	opt := dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			LinterConfig: &linter.Config{ExperimentalAll: true},
		},
		MetaResolver: offline{},
		SourceMap:    sm,
	}
	return dockerfile2llb.DockerfileLint(context.Background(), dt, opt)
}

func main() {
	failed := false
	for _, name := range os.Args[1:] {
		dt, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
			continue
		}
		res, err := Lint(name, dt)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			failed = true
			continue
		}
		if len(res.Warnings) > 0 || res.Error != nil {
			failed = true
			if err := res.PrintTo(os.Stderr, nil); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			}
			res.PrintErrorTo(os.Stderr, nil)
			continue
		}
		fmt.Printf("dockerfile-lint: %s: no warning\n", name)
	}
	if failed || len(os.Args) < 2 {
		os.Exit(1)
	}
}
