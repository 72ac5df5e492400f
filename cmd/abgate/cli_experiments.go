package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
)

// experimentsUsage lists the subcommands of "abgate experiments".
const experimentsUsage = `Usage: abgate experiments <command> [flags] [args]

Commands:
  list                          experiments with their source and status
  get ID                        an experiment's definition and state
  create -f FILE                create an experiment from a YAML or JSON file ("-" reads stdin)
  update ID -f FILE             replace an experiment created through the API (--new-phase to re-randomize)
  start ID                      start (or restart) the rollout
  pause ID                      freeze the split
  resume ID                     hand a paused experiment back to the controller
  step ID N                     move to ramp step N (counted from 1)
  promote ID [VARIANT]          serve a candidate to everyone (default: the only or recommended one)
  rollback ID                   serve the base to everyone
  stop ID                       end without a winner
  shadow_pass ID                end the shadow stage as passed: ramp step 1 begins (the judge gate could not conclude)
  transitions ID                the audit trail

Flags (anywhere after the command):
`

// runExperimentsCLI is "abgate experiments": the admin API from the
// command line.
func runExperimentsCLI(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	safe := &safeWriter{w: stdout}
	defer func() {
		if ferr := safe.flush(); err == nil {
			err = ferr
		}
	}()
	stdout = safe
	fs := newFlags("experiments", stderr)
	server := fs.String("server", envOr("ABGATE_SERVER", "http://127.0.0.1:8080"), "abgate's admin API address: server.admin_listen, or server.listen when the admin API shares it ($ABGATE_SERVER)")
	// The token's default is read after parsing, never shown by -h: it
	// is a secret.
	token := fs.String("token", "", "API token: viewer or admin to read, admin to change (default: $ABGATE_TOKEN)")
	reason := fs.String("reason", "", "why, recorded in the transition (actions)")
	file := fs.String("f", "", "definition file, YAML or JSON (create, update)")
	newPhase := fs.Bool("new-phase", false, "start a new phase: re-randomize users (update)")
	limit := fs.Int("limit", 0, "show only the last N transitions (transitions)")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprint(stderr, experimentsUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.Usage()
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	sub := args[0]
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("ABGATE_TOKEN")
	}
	c := &adminClient{server: strings.TrimSuffix(*server, "/"), token: *token, http: &http.Client{Timeout: 30 * time.Second}}
	out := &cliOutput{w: stdout, json: *asJSON}
	need := func(min, max int, names string) error {
		if len(pos) < min || len(pos) > max {
			fmt.Fprintf(stderr, "abgate experiments %s: want %s\n", sub, names)
			return errUsage
		}
		return nil
	}
	exp := func() string { return "/api/v1/experiments/" + url.PathEscape(pos[0]) }
	action := func(name string, body map[string]any) error {
		if *reason != "" {
			body["reason"] = *reason
		}
		raw, err := c.do(ctx, http.MethodPost, exp()+"/"+name, body, "")
		if err != nil {
			return err
		}
		return out.action(raw)
	}

	switch sub {
	case "list":
		if err := need(0, 0, "no arguments"); err != nil {
			return err
		}
		raw, err := c.do(ctx, http.MethodGet, "/api/v1/experiments", nil, "")
		if err != nil {
			return err
		}
		return out.list(raw)
	case "get":
		if err := need(1, 1, "ID"); err != nil {
			return err
		}
		raw, err := c.do(ctx, http.MethodGet, exp(), nil, "")
		if err != nil {
			return err
		}
		return out.detail(raw)
	case "create", "update":
		n, want := 0, "-f FILE"
		if sub == "update" {
			n, want = 1, "ID -f FILE"
		}
		if err := need(n, n, want); err != nil {
			return err
		}
		if *file == "" {
			fmt.Fprintf(stderr, "abgate experiments %s: -f FILE is required\n", sub)
			return errUsage
		}
		body, err := readDefinitionFile(*file)
		if err != nil {
			return err
		}
		method, path := http.MethodPost, "/api/v1/experiments"
		if sub == "update" {
			method, path = http.MethodPut, exp()
			if *newPhase {
				path += "?new_phase=true"
			}
		}
		raw, err := c.do(ctx, method, path, body, "application/yaml")
		if err != nil {
			return err
		}
		return out.detail(raw)
	case "start", "pause", "resume", "rollback", "stop", "shadow_pass":
		if err := need(1, 1, "ID"); err != nil {
			return err
		}
		return action(sub, map[string]any{})
	case "step":
		if err := need(2, 2, "ID STEP"); err != nil {
			return err
		}
		n, err := strconv.Atoi(pos[1])
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "abgate experiments step: STEP must be a ramp step number (1, 2, ...), got %q\n", pos[1])
			return errUsage
		}
		return action("step", map[string]any{"step": n})
	case "promote":
		if err := need(1, 2, "ID [VARIANT]"); err != nil {
			return err
		}
		body := map[string]any{}
		if len(pos) == 2 {
			body["variant"] = pos[1]
		}
		return action("promote", body)
	case "transitions":
		if err := need(1, 1, "ID"); err != nil {
			return err
		}
		path := exp() + "/transitions"
		if *limit > 0 {
			path += "?limit=" + strconv.Itoa(*limit)
		}
		raw, err := c.do(ctx, http.MethodGet, path, nil, "")
		if err != nil {
			return err
		}
		return out.transitions(raw)
	}
	fmt.Fprintf(stderr, "abgate experiments: unknown command %q\n\n", sub)
	fs.Usage()
	return errUsage
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// readDefinitionFile reads a definition ("-": stdin). It is sent as is:
// the API reads YAML as well as JSON and reports problems by field.
func readDefinitionFile(path string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, experiments.MaxDefinitionBytes+1))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read definition: %w", err)
	}
	return b, nil
}

// adminClient calls the admin API.
type adminClient struct {
	server, token string
	http          *http.Client
}

// APIError is a failed admin API call, with the API's error body.
type APIError struct {
	Status  int
	Code    string
	Message string
	Fields  []struct{ Field, Reason string }
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Code, e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Reason)
	}
	return b.String()
}

// do sends body (JSON-encoded unless it is raw bytes with contentType)
// and returns the answer's body, or an *APIError.
func (c *adminClient) do(ctx context.Context, method, path string, body any, contentType string) ([]byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, contentType = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(raw))}
		var eb struct {
			Error  struct{ Message, Code string } `json:"error"`
			Fields []struct{ Field, Reason string }
		}
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
			e.Code, e.Message, e.Fields = eb.Error.Code, eb.Error.Message, eb.Fields
		} else if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			e.Message += " (set --token or $ABGATE_TOKEN)"
		}
		if resp.StatusCode == http.StatusNotFound && (e.Code == "unknown_url" || e.Code == "http_error") {
			e.Message += fmt.Sprintf(" (is %s abgate's admin API? With server.admin_listen set, use that address: --server or $ABGATE_SERVER)", c.server)
		}
		return nil, e
	}
	return raw, nil
}

// cliOutput prints API answers as tables or, with --json, as JSON.
type cliOutput struct {
	w    io.Writer
	json bool
}

func (o *cliOutput) raw(raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := o.w.Write(b.Bytes())
	return err
}

func (o *cliOutput) list(raw []byte) error {
	if o.json {
		return o.raw(raw)
	}
	var l api.ExperimentList
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	tw := tabwriter.NewWriter(o.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSTATUS\tSTEP\tROUTES\tDESCRIPTION")
	for _, e := range l.Experiments {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Source, e.Status, stepText(e), strings.Join(e.Routes, ","), oneLine(e.Description, 60))
	}
	return tw.Flush()
}

func stepText(e api.ExperimentSummary) string {
	switch {
	case e.Steps == 0:
		return "-"
	case e.StepPercent != nil:
		return fmt.Sprintf("step %d of %d (%g%%)", e.Step, e.Steps, *e.StepPercent)
	}
	return fmt.Sprintf("step %d of %d", e.Step, e.Steps)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(safeText(s)), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func (o *cliOutput) detail(raw []byte) error {
	if o.json {
		return o.raw(raw)
	}
	var d api.ExperimentDetail
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	tw := tabwriter.NewWriter(o.w, 2, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("id", d.ID)
	row("description", oneLine(d.Description, 100))
	row("source", d.Source)
	row("status", d.Status)
	if d.Steps > 0 {
		row("step", stepText(d.ExperimentSummary))
	}
	row("winner", d.Winner)
	row("variants", strings.Join(d.Variants, ", "))
	row("routes", strings.Join(d.Routes, ", "))
	if d.Version > 0 {
		row("version", strconv.FormatInt(d.Version, 10))
	}
	if d.UpdatedAt != nil {
		row("updated", d.UpdatedAt.Format(time.RFC3339)+" by "+d.UpdatedBy)
	}
	if d.State != nil && d.State.Version > 0 {
		row("state", fmt.Sprintf("version %d, period %d, changed %s by %s", d.State.Version, d.State.Period, d.State.UpdatedAt.Format(time.RFC3339), d.State.UpdatedBy))
	}
	if r := d.Recommendation; r != nil {
		rec := string(r.Action)
		if rec == "" {
			rec = "wait"
		}
		if r.Note != "" {
			rec += ": " + r.Note
		}
		row("controller", rec)
	}
	row("problem", d.Problem)
	if err := tw.Flush(); err != nil {
		return err
	}
	// The definition as YAML, in the config's field order.
	def, err := json.Marshal(d.Definition)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(def, &n); err != nil {
		return err
	}
	blockStyle(&n)
	y, err := yaml.Marshal(&n)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.w, "\ndefinition:")
	for _, line := range strings.SplitAfter(strings.TrimRight(string(y), "\n"), "\n") {
		fmt.Fprint(o.w, "  "+line)
	}
	_, err = fmt.Fprintln(o.w)
	return err
}

// blockStyle clears the JSON (flow, quoted) styles so the node prints as
// plain block YAML, like a config file.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func (o *cliOutput) action(raw []byte) error {
	if o.json {
		return o.raw(raw)
	}
	var r api.ActionResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	t := r.Transition
	_, err := fmt.Fprintf(o.w, "%s: %s, %s → %s (step %d → %d, period %d) by %s\n",
		t.Experiment, t.Action, t.From, t.To, t.FromStep, t.ToStep, t.Period, t.Actor)
	return err
}

func (o *cliOutput) transitions(raw []byte) error {
	if o.json {
		return o.raw(raw)
	}
	var l api.TransitionList
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	tw := tabwriter.NewWriter(o.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tACTOR\tACTION\tFROM\tTO\tSTEP\tREASON")
	for _, t := range l.Transitions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d→%d\t%s\n", t.Seq, t.At.UTC().Format("2006-01-02 15:04:05"),
			t.Actor, t.Action, t.From, t.To, t.FromStep, t.ToStep, oneLine(t.Reason, 80))
	}
	return tw.Flush()
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
