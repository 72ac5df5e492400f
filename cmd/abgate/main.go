// Command abgate is the A/B rollout gateway for model versions.
//
//	abgate demo                     everything on loopback, no Redis, no model needed
//	abgate serve --config FILE      the gateway
//	abgate validate --config FILE   check a config, field by field
//	abgate experiments list|get|create|start|pause|…   the admin API, for scripts
//	abgate report ID                an experiment's report, from a running abgate
//	abgate plan --baseline 0.1 --mde 0.05   users and days a lift needs
//	abgate fake-upstream            a simulated OpenAI-compatible model (for load tests)
//
// Subcommands use the standard flag package: the binary stays small and
// needs no command framework for a handful of verbs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run the gateway with two simulated models, in memory, on loopback", runDemo},
		{"serve", "run the gateway from a config file", runServe},
		{"validate", "check a config file and print every problem", runValidate},
		{"experiments", "manage experiments through the admin API", runExperimentsCLI},
		{"report", "print an experiment's report (text, markdown or json)", runReport},
		{"plan", "how many users and days a lift needs", runPlan},
		{"fake-upstream", "run a simulated OpenAI-compatible model endpoint", runFakeUpstream},
		{"healthcheck", "exit 0 if a running abgate answers 200 on /healthz (for containers)", runHealthcheck},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "abgate", version)
			return nil
		}},
	}
}

// errUsage marks a command-line mistake: the usage was already printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil || errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errInvalid):
			return 1
		}
		fmt.Fprintf(stderr, "abgate %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "abgate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "abgate: the A/B rollout gateway for model versions\n\nUsage: abgate <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'abgate <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("abgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and turns a flag mistake into errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
