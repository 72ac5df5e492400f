package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/abgate/abgate/experiments"
)

// runValidate checks a config and prints every problem, one field per
// line; it exits non-zero when there is any.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	path := fs.String("config", "abgate.yaml", "config file")
	serve := fs.Bool("serve", true, "also require what serve needs (token_secret)")
	if err := parse(fs, args); err != nil {
		return err
	}
	load := experiments.Load
	if *serve {
		load = experiments.LoadForServe
	}
	cfg, err := load(*path)
	var verr experiments.ValidationError
	if errors.As(err, &verr) {
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(verr))
		for _, fe := range verr {
			fmt.Fprintf(stderr, "  %s: %s\n", fe.Field, fe.Reason)
		}
		return errInvalid
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d upstreams, %d experiments, %d routes)\n",
		*path, len(cfg.Upstreams), len(cfg.Experiments), len(cfg.Routes))
	return nil
}

// errInvalid: the problems were printed already; exit 1 without more.
var errInvalid = errors.New("invalid config")
