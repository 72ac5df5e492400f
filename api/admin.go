package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/rollout"
)

// Admin serves the admin API of experiments (issue #6):
//
//	GET  /api/v1/experiments                    list, with status (read)
//	POST /api/v1/experiments                    create a stored experiment (write)
//	GET  /api/v1/experiments/:id                definition, state, source (read)
//	PUT  /api/v1/experiments/:id                replace a stored experiment (write)
//	POST /api/v1/experiments/:id/<action>       start, pause, resume, step, promote, rollback, stop, shadow_pass (write)
//	GET  /api/v1/experiments/:id/transitions    the audit trail (read)
//	GET  /api/v1/openapi.json                   the OpenAPI document of every route (read)
//
// Experiments of the config file are read-only here; those created through
// the API are kept in the catalog's Definitions and reach every replica
// through it (see rollout.Catalog). docs/api.md describes the routes.
type Admin struct {
	cat *rollout.Catalog
	lc  *rollout.Lifecycle
	now func() time.Time
}

// AdminOption configures an Admin.
type AdminOption func(*Admin)

// WithAdminClock replaces time.Now (definition timestamps), for tests.
func WithAdminClock(now func() time.Time) AdminOption { return func(a *Admin) { a.now = now } }

// NewAdmin returns the admin API of cat's experiments, whose lifecycle
// commands go through lc. The catalog's onChange must pass every merged
// config to lc.Update (and to the gateway and the watchers): a write
// refreshes the catalog before it answers, so the experiment it created
// or changed is live on this replica when the client hears back.
func NewAdmin(cat *rollout.Catalog, lc *rollout.Lifecycle, opts ...AdminOption) *Admin {
	a := &Admin{cat: cat, lc: lc, now: time.Now}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register mounts the routes: reads need a viewer or admin token (or
// auth.open_reads), writes an admin token.
func (a *Admin) Register(r gin.IRouter, tokens *Tokens) {
	read, write := tokens.RequireRead(), tokens.RequireWrite()
	r.GET("/api/v1/openapi.json", read, serveOpenAPI)
	r.GET("/api/v1/experiments", read, a.list)
	r.POST("/api/v1/experiments", write, a.create)
	r.GET("/api/v1/experiments/:id", read, a.get)
	r.PUT("/api/v1/experiments/:id", write, a.update)
	r.GET("/api/v1/experiments/:id/transitions", read, a.transitions)
	for _, act := range adminActions {
		r.POST("/api/v1/experiments/:id/"+act, write, a.action(act))
	}
}

// adminActions are the lifecycle actions, by their path segment.
var adminActions = []string{"start", "pause", "resume", "step", "promote", "rollback", "stop", "shadow_pass"}

// StatusFixed is the status the API gives an experiment without a
// rollout: it serves its configured weights, and lifecycle actions don't
// apply to it.
const StatusFixed = "fixed"

// StatusInvalid is the status of a stored experiment left out of the
// merged config (see rollout.Catalog.Problem); fix it with PUT.
const StatusInvalid = "invalid"

// ExperimentSummary is one experiment in the list.
type ExperimentSummary struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// Source is "config" (the config file; read-only here) or "api".
	Source string `json:"source"`
	// Status is the lifecycle status (draft, running, paused, promoted,
	// rolled_back, stopped), "fixed" without a rollout, or "invalid" for a
	// stored experiment that can't be served (see Problem).
	Status string `json:"status"`
	// Step is the current ramp step, counted from 1 ("step 2 of 4"), of
	// Steps; StepPercent is each candidate's share of covered traffic at
	// that step.
	Step        int      `json:"step"`
	Steps       int      `json:"steps"`
	StepPercent *float64 `json:"step_percent,omitempty"`
	// Winner is the promoted variant's name.
	Winner   string   `json:"winner,omitempty"`
	Variants []string `json:"variants"`
	Routes   []string `json:"routes"`
	// Version is the stored definition's version (source "api").
	Version int64 `json:"version,omitempty"`
	// Problem says why an invalid stored experiment is not served.
	Problem string `json:"problem,omitempty"`
}

// ExperimentList is the body of GET /api/v1/experiments.
type ExperimentList struct {
	Experiments []ExperimentSummary `json:"experiments"`
}

// ExperimentDetail is the body of GET /api/v1/experiments/:id and of a
// successful create or update.
type ExperimentDetail struct {
	ExperimentSummary
	// Definition is the experiment as served, defaults applied, with its
	// routes (as stored, for an invalid one).
	Definition experiments.Definition `json:"definition"`
	// State is the live lifecycle state (absent without a rollout).
	State *experiments.PublicState `json:"state,omitempty"`
	// Recommendation is the rollout controller's latest evaluation.
	Recommendation *experiments.PublicRecommendation `json:"recommendation,omitempty"`
	CreatedAt      *time.Time                        `json:"created_at,omitempty"`
	UpdatedAt      *time.Time                        `json:"updated_at,omitempty"`
	UpdatedBy      string                            `json:"updated_by,omitempty"`
}

// ActionRequest is the body of a lifecycle action (optional for all but
// step).
type ActionRequest struct {
	// Reason is recorded in the transition, with the token's name.
	Reason string `json:"reason"`
	// Variant names the candidate to promote (promote only). Default: the
	// only candidate, else the controller's recommended winner.
	Variant string `json:"variant,omitempty"`
	// Step is the ramp step to move to, counted from 1 (step only;
	// required).
	Step *int `json:"step,omitempty"`
}

// ActionResult answers a lifecycle action.
type ActionResult struct {
	Transition experiments.PublicTransition `json:"transition"`
	State      experiments.PublicState      `json:"state"`
}

// TransitionList is the body of GET /api/v1/experiments/:id/transitions.
type TransitionList struct {
	Transitions []experiments.PublicTransition `json:"transitions"`
}

// Limits of the admin API.
const (
	maxActionBody     = 16 << 10
	maxReasonLen      = 1000
	defaultTransLimit = 100
	maxTransLimit     = 1000
)

// Admin errors that adminError maps to a status.
var (
	errDefinedInFile = errors.New("the experiment is defined in the config file: change it there")
	errExists        = errors.New("an experiment with this id already exists")
	errReshuffle     = errors.New("reshuffle needs a new phase")
	errStale         = errors.New("if-match does not match the stored version")
)

// fieldErrors is a validation failure of a request: 422 with the fields.
func fieldErrors(fes ...experiments.FieldError) error { return experiments.ValidationError(fes) }

// validationBody is the body of a 422: the error plus one entry per
// invalid field.
type validationBody struct {
	Error  errorDetail       `json:"error"`
	Fields []fieldErrorEntry `json:"fields"`
}

type fieldErrorEntry struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// adminError maps every failure of an admin handler to its HTTP answer:
// the one place where errors become statuses. fields is set for 422.
func adminError(err error) (e *apiError, fields []fieldErrorEntry) {
	var ae *apiError
	var ve experiments.ValidationError
	switch {
	case errors.Is(err, context.Canceled):
		// The client is gone; nobody reads this (nginx's "client closed request").
		return newError(499, "client_closed_request", "", "the request was canceled"), nil
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusServiceUnavailable, "timeout", "", "the store did not answer in time; try again"), nil
	case errors.As(err, &ae):
		return ae, nil
	case errors.As(err, &ve):
		for _, fe := range ve {
			fields = append(fields, fieldErrorEntry{Field: fe.Field, Reason: fe.Reason})
		}
		msg := "the request is invalid: " + ve[0].Error()
		if len(ve) > 1 {
			msg += fmt.Sprintf(" (and %d more problems, see fields)", len(ve)-1)
		}
		return newError(http.StatusUnprocessableEntity, "validation_failed", ve[0].Field, msg), fields
	case errors.Is(err, experiments.ErrInvalidConfig):
		// A body that isn't a JSON (or YAML) document at all.
		return newError(http.StatusBadRequest, "invalid_json", "", "request body is not a valid JSON document: "+err.Error()), nil
	case errors.Is(err, experiments.ErrNotFound):
		return newError(http.StatusNotFound, "experiment_not_found", "id", "no experiment has this id"), nil
	case errors.Is(err, errDefinedInFile):
		return newError(http.StatusConflict, "defined_in_config", "id", "the experiment is defined in the config file: change it there, not through the API"), nil
	case errors.Is(err, errExists):
		return newError(http.StatusConflict, "experiment_exists", "id", errExists.Error()), nil
	case errors.Is(err, errStale):
		return newError(http.StatusPreconditionFailed, "precondition_failed", "If-Match",
			"the experiment changed since you read it (If-Match does not match its ETag): read it again"), nil
	case errors.Is(err, errReshuffle):
		return newError(http.StatusConflict, "reshuffle_requires_new_phase", "",
			"the experiment is live and this change would move users between variants (another salt or number of candidates, "+
				"lower coverage or higher holdout): retry with ?new_phase=true to start a new phase, whose data is kept apart"), nil
	case errors.Is(err, experiments.ErrInvalidTransition):
		// The message names the action, the status and what is allowed; no internals.
		return newError(http.StatusConflict, "invalid_transition", "", err.Error()), nil
	case errors.Is(err, experiments.ErrConflict):
		return newError(http.StatusConflict, "conflict", "", "the experiment changed concurrently; read it again and retry"), nil
	}
	return newError(http.StatusInternalServerError, "internal_error", "", "internal error"), nil
}

// fail answers with err's mapping; server errors are attached to the gin
// context for the logger and never shown.
func fail(c *gin.Context, err error) {
	e, fields := adminError(err)
	if e.Status >= 500 {
		_ = c.Error(err)
	}
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	if fields != nil {
		c.AbortWithStatusJSON(e.Status, validationBody{Error: e.Detail, Fields: fields})
		return
	}
	abort(c, e)
}

// refresh brings the catalog up to date; on a store error it keeps the
// last view for reads (which say so in no way but staleness) and fails
// writes.
func (a *Admin) refresh(c *gin.Context, forWrite bool) bool {
	if err := a.cat.Refresh(c.Request.Context()); err != nil {
		if forWrite || errors.Is(err, context.Canceled) {
			fail(c, err)
			return false
		}
		_ = c.Error(err)
	}
	return true
}

func (a *Admin) list(c *gin.Context) {
	if !a.refresh(c, false) {
		return
	}
	ctx := c.Request.Context()
	cfg := a.cat.Config()
	out := ExperimentList{Experiments: []ExperimentSummary{}}
	for i := range cfg.Experiments {
		d, err := a.detail(ctx, cfg, &cfg.Experiments[i], false)
		if err != nil {
			fail(c, err)
			return
		}
		out.Experiments = append(out.Experiments, d.ExperimentSummary)
	}
	skipped := a.cat.Skipped()
	for _, id := range slices.Sorted(maps.Keys(skipped)) {
		if cfg.Experiment(id) != nil {
			continue // a file experiment took the id; the stored one is shadowed
		}
		if s, ok := a.cat.Stored(id); ok {
			out.Experiments = append(out.Experiments, invalidDetail(s, skipped[id]).ExperimentSummary)
		}
	}
	c.JSON(http.StatusOK, out)
}

func (a *Admin) get(c *gin.Context) {
	if !a.refresh(c, false) {
		return
	}
	d, err := a.lookup(c.Request.Context(), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	setETag(c, d)
	c.JSON(http.StatusOK, d)
}

// etag is the entity tag of a stored definition's version: PUT takes it
// in If-Match to refuse an update based on a stale read.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func setETag(c *gin.Context, d ExperimentDetail) {
	if d.Source == experiments.SourceAPI && d.Version > 0 {
		c.Header("ETag", etag(d.Version))
	}
}

// lookup builds the detail of id from the current catalog.
func (a *Admin) lookup(ctx context.Context, id string) (ExperimentDetail, error) {
	cfg := a.cat.Config()
	if e := cfg.Experiment(id); e != nil {
		return a.detail(ctx, cfg, e, true)
	}
	if s, ok := a.cat.Stored(id); ok {
		if p := a.cat.Problem(id); p != nil {
			return invalidDetail(s, p), nil
		}
	}
	return ExperimentDetail{}, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound)
}

func invalidDetail(s experiments.StoredExperiment, problem error) ExperimentDetail {
	e := s.Definition.Experiment
	d := ExperimentDetail{
		ExperimentSummary: ExperimentSummary{
			ID: e.ID, Description: e.Description, Source: experiments.SourceAPI, Status: StatusInvalid,
			Variants: variantNames(&e), Routes: nonNil(s.Definition.Routes), Version: s.Version, Problem: problem.Error(),
		},
		Definition: s.Definition,
		UpdatedBy:  s.UpdatedBy,
	}
	d.CreatedAt, d.UpdatedAt = &s.CreatedAt, &s.UpdatedAt
	return d
}

// detail describes e of cfg; full adds the controller's recommendation.
func (a *Admin) detail(ctx context.Context, cfg *experiments.Config, e *experiments.Experiment, full bool) (ExperimentDetail, error) {
	d := ExperimentDetail{ExperimentSummary: ExperimentSummary{
		ID: e.ID, Description: e.Description, Source: a.cat.Source(e.ID), Status: StatusFixed,
		Variants: variantNames(e), Routes: []string{},
	}}
	for _, r := range cfg.Routes {
		if r.Experiment == e.ID {
			d.Routes = append(d.Routes, r.Alias)
		}
	}
	d.Definition = experiments.Definition{Experiment: *e, Routes: d.Routes}
	if s, ok := a.cat.Stored(e.ID); ok && d.Source == experiments.SourceAPI {
		d.Version, d.UpdatedBy = s.Version, s.UpdatedBy
		d.CreatedAt, d.UpdatedAt = &s.CreatedAt, &s.UpdatedAt
	}
	if e.Rollout == nil {
		return d, nil
	}
	st, err := a.state(ctx, e)
	if err != nil {
		return d, err
	}
	steps := experiments.RolloutSteps(e)
	pub := st.Public()
	d.Status, d.Step, d.Steps, d.State = string(st.Status), pub.Step, len(steps), &pub
	if (st.Status == experiments.StatusRunning || st.Status == experiments.StatusPaused) && st.Step >= 0 && st.Step < len(steps) {
		p := steps[st.Step].Percent
		d.StepPercent = &p
	}
	if st.Status == experiments.StatusPromoted && st.Winner > 0 && st.Winner < len(e.Variants) {
		d.Winner = e.Variants[st.Winner].Name
	}
	if full {
		rec, err := a.lc.LatestDecision(ctx, e.ID)
		switch {
		case err == nil:
			pr := rec.Public()
			d.Recommendation = &pr
		case !errors.Is(err, experiments.ErrNotFound):
			return d, err
		}
	}
	return d, nil
}

// state is the lifecycle state of e; Draft when the lifecycle service
// does not know e yet (a replica between a store write and its refresh).
func (a *Admin) state(ctx context.Context, e *experiments.Experiment) (experiments.State, error) {
	st, err := a.lc.State(ctx, e.ID)
	if errors.Is(err, experiments.ErrNotFound) {
		return experiments.Draft(e), nil
	}
	return st, err
}

func variantNames(e *experiments.Experiment) []string {
	out := make([]string, len(e.Variants))
	for i, v := range e.Variants {
		out[i] = v.Name
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// readDefinition decodes the request body as a definition.
func readDefinition(c *gin.Context) (experiments.Definition, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, experiments.MaxDefinitionBytes)
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return experiments.Definition{}, newError(http.StatusRequestEntityTooLarge, "body_too_large", "",
				fmt.Sprintf("request body is larger than %d bytes", experiments.MaxDefinitionBytes))
		}
		return experiments.Definition{}, err
	}
	return experiments.DecodeDefinition(body)
}

func (a *Admin) create(c *gin.Context) {
	def, err := readDefinition(c)
	if err != nil {
		fail(c, err)
		return
	}
	if !a.refresh(c, true) {
		return
	}
	ctx := c.Request.Context()
	id := def.Experiment.ID
	if a.cat.File().Experiment(id) != nil {
		fail(c, errDefinedInFile)
		return
	}
	if _, ok := a.cat.Stored(id); ok {
		fail(c, errExists)
		return
	}
	if err := experiments.ValidateDefinition(a.cat.Config(), def); err != nil {
		fail(c, err)
		return
	}
	now := a.now().UTC()
	s := experiments.StoredExperiment{Definition: def, Version: 1, CreatedAt: now, UpdatedAt: now, UpdatedBy: Actor(c)}
	if err := a.cat.Definitions().Put(ctx, 0, s); err != nil {
		if errors.Is(err, experiments.ErrConflict) {
			err = errExists // created concurrently
		}
		fail(c, err)
		return
	}
	a.written(c, id, http.StatusCreated)
}

// written answers a successful create or update with the experiment as
// this replica now serves it.
func (a *Admin) written(c *gin.Context, id string, status int) {
	if err := a.cat.Refresh(c.Request.Context()); err != nil {
		_ = c.Error(fmt.Errorf("refresh after writing %q: %w", id, err)) // other replicas poll; so will this one
	}
	d, err := a.lookup(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/experiments/"+url.PathEscape(id))
	setETag(c, d)
	c.JSON(status, d)
}

func (a *Admin) update(c *gin.Context) {
	id := c.Param("id")
	newPhase := false
	if q, ok := c.GetQuery("new_phase"); ok {
		b, err := strconv.ParseBool(q)
		if err != nil {
			fail(c, fieldErrors(experiments.FieldError{Field: "new_phase", Reason: "must be true or false"}))
			return
		}
		newPhase = b
	}
	if !a.refresh(c, true) {
		return
	}
	ctx := c.Request.Context()
	if a.cat.File().Experiment(id) != nil {
		fail(c, errDefinedInFile)
		return
	}
	prev, ok := a.cat.Stored(id)
	if !ok {
		fail(c, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound))
		return
	}
	if m := c.GetHeader("If-Match"); m != "" && m != "*" && m != etag(prev.Version) {
		fail(c, errStale)
		return
	}
	def, err := readDefinition(c)
	if err != nil {
		fail(c, err)
		return
	}
	switch def.Experiment.ID {
	case "":
		def.Experiment.ID = id
	case id:
	default:
		fail(c, fieldErrors(experiments.FieldError{Field: "id", Reason: "must match the id in the URL (ids can't be changed)"}))
		return
	}
	old := a.cat.Config().Experiment(id) // nil when the stored one is invalid
	oldPhase := max(prev.Definition.Experiment.Phase, 1)
	switch {
	case def.Experiment.Phase == 0:
		def.Experiment.Phase = prev.Definition.Experiment.Phase // unchanged unless asked
	case def.Experiment.Phase < oldPhase:
		fail(c, fieldErrors(experiments.FieldError{Field: "phase", Reason: fmt.Sprintf("must not decrease (it is %d)", oldPhase)}))
		return
	}
	merged, err := experiments.MergeDefinition(a.cat.Config(), def)
	if err != nil {
		fail(c, err)
		return
	}
	var live *experiments.State // the state, when the experiment serves a split now
	if old != nil {
		st, err := a.state(ctx, old)
		if err != nil {
			fail(c, err)
			return
		}
		if old.Rollout == nil || st.Status == experiments.StatusRunning || st.Status == experiments.StatusPaused {
			live = &st
		}
		raised := max(def.Experiment.Phase, 1) > oldPhase
		if live != nil && !raised && !newPhase && experiments.Reshuffles(serving(old, st), serving(merged.Experiment(id), st)) {
			fail(c, errReshuffle)
			return
		}
		if newPhase && !raised {
			def.Experiment.Phase = max(oldPhase, st.SaltPhase) + 1
			if _, err := experiments.MergeDefinition(a.cat.Config(), def); err != nil {
				fail(c, err)
				return
			}
		}
	}
	next := experiments.StoredExperiment{
		Definition: def, Version: prev.Version + 1, CreatedAt: prev.CreatedAt,
		UpdatedAt: a.now().UTC(), UpdatedBy: Actor(c),
	}
	if err := a.cat.Definitions().Put(ctx, prev.Version, next); err != nil {
		fail(c, err)
		return
	}
	if err := a.cat.Refresh(ctx); err != nil {
		_ = c.Error(fmt.Errorf("refresh after writing %q: %w", id, err))
	}
	// A raised phase on a live rollout: reshuffle now, under this actor,
	// rather than at the controller's next tick.
	if live != nil && old.Rollout != nil && max(def.Experiment.Phase, 1) > live.SaltPhase {
		_, err := a.lc.Do(ctx, experiments.Command{
			Experiment: id, Action: experiments.ActionReshuffle, Actor: Actor(c),
			Reason: fmt.Sprintf("definition updated with new phase %d", def.Experiment.Phase),
		})
		if err != nil && !errors.Is(err, experiments.ErrInvalidTransition) && !errors.Is(err, experiments.ErrConflict) {
			_ = c.Error(fmt.Errorf("reshuffle %q: %w", id, err)) // the controller retries it
		}
	}
	a.written(c, id, http.StatusOK)
}

// serving is the allocation e serves in state st: the lifecycle's with a
// rollout, the configured one without.
func serving(e *experiments.Experiment, st experiments.State) *experiments.Allocation {
	if e.Rollout == nil {
		return e.Allocation()
	}
	return e.AllocationFor(st)
}

func (a *Admin) transitions(c *gin.Context) {
	id := c.Param("id")
	limit := defaultTransLimit
	if q, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxTransLimit {
			fail(c, fieldErrors(experiments.FieldError{Field: "limit", Reason: fmt.Sprintf("must be an integer from 1 to %d", maxTransLimit)}))
			return
		}
		limit = n
	}
	if !a.refresh(c, false) {
		return
	}
	if a.cat.Config().Experiment(id) == nil {
		if _, ok := a.cat.Stored(id); !ok {
			fail(c, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound))
			return
		}
	}
	ts, err := a.lc.History(c.Request.Context(), id, limit)
	if err != nil {
		fail(c, err)
		return
	}
	if ts == nil {
		ts = []experiments.Transition{}
	}
	c.JSON(http.StatusOK, TransitionList{Transitions: experiments.PublicTransitions(ts)})
}

// decodeJSON decodes a JSON body strictly: syntax errors are 400, unknown
// fields and wrong types 422 with the field.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		return newError(http.StatusBadRequest, "invalid_json", "", "request body holds more than one JSON value")
	}
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te) && te.Field != "":
		return fieldErrors(experiments.FieldError{Field: te.Field, Reason: "must be " + jsonKind(te.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return fieldErrors(experiments.FieldError{Field: name, Reason: "unknown field"})
	}
	return newError(http.StatusBadRequest, "invalid_json", "", "request body is not valid JSON: "+err.Error())
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "ptr", "int", "int64":
		return "an integer"
	}
	return "a " + k
}

// readAction decodes an action's optional body.
func readAction(c *gin.Context, action string) (ActionRequest, error) {
	var req ActionRequest
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxActionBody)
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, newError(http.StatusRequestEntityTooLarge, "body_too_large", "",
				fmt.Sprintf("request body is larger than %d bytes", maxActionBody))
		}
		return req, err
	}
	if len(body) > 0 {
		if e := decodeJSON(body, &req); e != nil {
			return req, e
		}
	}
	var fes experiments.ValidationError
	if len(req.Reason) > maxReasonLen {
		fes = append(fes, experiments.FieldError{Field: "reason", Reason: fmt.Sprintf("at most %d bytes", maxReasonLen)})
	}
	if req.Variant != "" && action != "promote" {
		fes = append(fes, experiments.FieldError{Field: "variant", Reason: "only promote takes a variant"})
	}
	switch {
	case req.Step != nil && action != "step":
		fes = append(fes, experiments.FieldError{Field: "step", Reason: "only the step action takes a step"})
	case req.Step == nil && action == "step":
		fes = append(fes, experiments.FieldError{Field: "step", Reason: "required: the ramp step to move to, counted from 1"})
	}
	if len(fes) > 0 {
		return req, fes
	}
	return req, nil
}

func (a *Admin) action(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("id")
		req, err := readAction(c, action)
		if err != nil {
			fail(c, err)
			return
		}
		if !a.refresh(c, true) {
			return
		}
		ctx := c.Request.Context()
		e := a.cat.Config().Experiment(id)
		if e == nil {
			fail(c, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound))
			return
		}
		actor := Actor(c)
		var t experiments.Transition
		switch action {
		case "start":
			t, err = a.lc.Start(ctx, id, actor, req.Reason)
		case "pause":
			t, err = a.lc.Pause(ctx, id, actor, req.Reason)
		case "resume":
			t, err = a.lc.Resume(ctx, id, actor, req.Reason)
		case "rollback":
			t, err = a.lc.Rollback(ctx, id, actor, req.Reason)
		case "stop":
			t, err = a.lc.Stop(ctx, id, actor, req.Reason)
		case "shadow_pass":
			t, err = a.lc.ShadowPass(ctx, id, actor, req.Reason)
		case "step":
			t, err = a.lc.SetStep(ctx, id, *req.Step-1, actor, req.Reason)
		case "promote":
			var winner int
			if winner, err = a.winner(ctx, e, req.Variant); err == nil {
				t, err = a.lc.Promote(ctx, id, winner, actor, req.Reason)
			}
		}
		if err != nil {
			fail(c, err)
			return
		}
		st, err := a.state(ctx, e)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, ActionResult{Transition: t.Public(), State: st.Public()})
	}
}

// winner resolves promote's variant: the named candidate, else the only
// candidate, else the controller's recommended winner.
func (a *Admin) winner(ctx context.Context, e *experiments.Experiment, name string) (int, error) {
	if name != "" {
		switch i := e.VariantIndex(name); {
		case i < 0:
			return 0, fieldErrors(experiments.FieldError{Field: "variant", Reason: "no variant of the experiment has this name"})
		case i == 0:
			return 0, fieldErrors(experiments.FieldError{Field: "variant", Reason: "the base can't be promoted (use rollback to serve it to everyone)"})
		default:
			return i, nil
		}
	}
	if len(e.Variants) == 2 {
		return 1, nil
	}
	rec, err := a.lc.LatestDecision(ctx, e.ID)
	if err != nil && !errors.Is(err, experiments.ErrNotFound) {
		return 0, err
	}
	if err == nil && rec.Decision != nil && rec.Decision.Winner != nil {
		if w := *rec.Decision.Winner; w > 0 && w < len(e.Variants) {
			return w, nil
		}
	}
	return 0, fieldErrors(experiments.FieldError{Field: "variant",
		Reason: "required: the experiment has several candidates and the controller recommends none"})
}
