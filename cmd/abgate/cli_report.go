package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
)

// runReport prints an experiment's report from a running abgate.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	safe := &safeWriter{w: stdout}
	defer func() {
		if ferr := safe.flush(); err == nil {
			err = ferr
		}
	}()
	stdout = safe
	fs := newFlags("report", stderr)
	server := fs.String("server", envOr("ABGATE_SERVER", "http://127.0.0.1:8080"), "abgate's admin/report address ($ABGATE_SERVER)")
	// Read after parsing, never shown by -h: it is a secret.
	token := fs.String("token", "", "API token with the viewer or admin role (default: $ABGATE_TOKEN)")
	format := fs.String("format", "text", "text, markdown or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: abgate report [flags] EXPERIMENT_ID")
		fs.PrintDefaults()
	}
	// The id may come before or after the flags.
	id, rest := splitID(args)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 || id == "" {
		fs.Usage()
		return errUsage
	}
	switch *format {
	case "text", "markdown", "json":
	default:
		fmt.Fprintf(stderr, "abgate report: --format must be text, markdown or json, got %q\n", *format)
		return errUsage
	}
	if *token == "" {
		*token = os.Getenv("ABGATE_TOKEN")
	}
	r, err := api.FetchReport(ctx, *server, id, *token)
	if err != nil {
		return err
	}
	switch *format {
	case "markdown":
		return api.RenderMarkdown(stdout, r)
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return api.RenderText(stdout, r)
}

// splitID takes a leading positional argument off args.
func splitID(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// runPlan answers "how many users, how long" offline. Its flags are the
// query parameters of GET /api/v1/plan and are validated by the same code.
func runPlan(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	fs.String("baseline", "", "the base's current rate (0.10) or mean (with --sd)")
	fs.String("mde", "", "minimum detectable effect: a fraction of the baseline with --relative, else in metric units")
	fs.String("relative", "true", "whether --mde is relative to the baseline")
	fs.String("sd", "", "per-user standard deviation, for a metric that is not a rate")
	fs.String("power", "0.8", "chance of detecting the effect if it is there")
	fs.String("alpha", "0.05", "two-sided false-positive rate")
	fs.String("method", "confidence-sequence", "confidence-sequence, msprt or group-sequential")
	fs.String("looks", "", "planned analyses of a group-sequential design")
	fs.String("variants", "2", "base plus candidates")
	fs.String("daily_users", "", "new users a day on the model alias (for the duration)")
	fs.String("coverage", "", "percent of those users in the experiment")
	fs.String("share", "", "each candidate's percent of covered users (default: equal split)")
	fs.String("experiment", "", "plan for this experiment's configured design (read from --config): alpha, method, variants, the step's share, coverage, N* and rollout.expected_daily_users fill the flags not given")
	cfgPath := fs.String("config", "abgate.yaml", "config file, with --experiment")
	step := fs.Int("step", 0, "ramp step (from 1) to plan at, with --experiment; default the last (where the primary is decided)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	q := url.Values{}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "json", "config", "step":
		default:
			q.Set(f.Name, f.Value.String())
		}
	})
	// Defaults that the endpoint also applies are sent only when set, so
	// both answer the same question.
	req, err := api.ParsePlanQuery(q)
	if err != nil {
		fmt.Fprintf(stderr, "abgate plan: %v\n", err)
		return errUsage
	}
	traffic := ""
	if req.Experiment != "" {
		cfg, err := experiments.Load(*cfgPath)
		if err != nil {
			return err
		}
		e := cfg.Experiment(req.Experiment)
		if e == nil {
			fmt.Fprintf(stderr, "abgate plan: experiment %q is not in %s\n", req.Experiment, *cfgPath)
			return errUsage
		}
		// No live state offline: the step asked for (default the last),
		// its first test, and the configured traffic.
		st := api.ReportStatus{Step: -1}
		if n := len(experiments.RolloutSteps(e)); n > 0 {
			st.Step = n - 1
			if *step > 0 {
				st.Step = min(*step, n) - 1
			}
		}
		req, traffic = api.ForExperiment(req, e, st, 0)
	}
	res, err := api.MakePlan(req)
	if err == nil && res.Days != nil && traffic != "" {
		res.Traffic = traffic
	}
	if err != nil {
		// A parameter the plan can't use is a usage error (exit 2).
		fmt.Fprintf(stderr, "abgate plan: %v\n", err)
		return errUsage
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(stdout, res.Summary)
	return nil
}
