package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/stats"
)

// Gates for deployment controllers (issue 13): Argo Rollouts' web metric
// provider and Flagger's webhooks can gate a model server's rollout on
// abgate's sequential test instead of static thresholds. Both read the
// same Gate, which is the report's decision (the controller's policy, or
// the decision recorded when the controller ended the experiment) reduced
// to four words. docs/integrations.md has a working AnalysisTemplate and
// Canary.

// Gate verdicts.
const (
	// GatePromote: the candidate is significantly better with every
	// guardrail non-inferior, or the experiment was promoted.
	GatePromote = "promote"
	// GateContinue: nothing is wrong yet; keep collecting (the controller
	// may be ramping: "advance" is a continue for an outside controller).
	GateContinue = "continue"
	// GateRollback: a guardrail is breached, the candidate is worse, it
	// cannot win (futility), or the experiment was rolled back or stopped.
	GateRollback = "rollback"
	// GateInconclusive: the data cannot be trusted (sample-ratio
	// mismatch) or the experiment is paused: a human should look. Argo
	// counts it as neither success nor failure (Inconclusive).
	GateInconclusive = "inconclusive"
)

// Gate is an experiment's verdict for a deployment controller.
type Gate struct {
	Experiment string `json:"experiment"`
	// Verdict is promote, continue, rollback or inconclusive.
	Verdict string `json:"verdict"`
	// Decision is what stats.Decide returned (promote, advance, continue,
	// rollback, stop_futility, halt_srm), or the lifecycle's end state.
	Decision string `json:"decision"`
	Status   string `json:"status"`
	// Step is the ramp step, counted from 1 ("step 2 of 4"); 0 without a
	// rollout.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Reason is the report's verdict sentence; ReasonCodes the
	// decision's reasons.
	Reason      string      `json:"reason"`
	ReasonCodes []string    `json:"reason_codes"`
	Primary     *GateMetric `json:"primary,omitempty"`
	GeneratedAt time.Time   `json:"generated_at"`
}

// GateMetric is the primary metric's effect with its always-valid
// interval, for the candidate the decision is about.
type GateMetric struct {
	Metric   string   `json:"metric"`
	Variant  string   `json:"variant"`
	Relative bool     `json:"relative"`
	Lift     *float64 `json:"lift,omitempty"`
	CILow    *float64 `json:"ci_low,omitempty"`
	CIHigh   *float64 `json:"ci_high,omitempty"`
}

// gateOf reduces a report to its gate.
func gateOf(r Report) Gate {
	g := Gate{
		Experiment: r.Experiment, Status: r.Status, Steps: r.Steps,
		Decision: string(r.Decision.Verdict), Reason: r.Verdict.Sentence,
		ReasonCodes: []string{}, GeneratedAt: r.GeneratedAt,
	}
	g.Step = r.Step
	for _, rs := range r.Decision.Reasons {
		g.ReasonCodes = append(g.ReasonCodes, string(rs.Code))
	}
	switch r.Decision.Verdict {
	case stats.Promote:
		g.Verdict = GatePromote
	case stats.Rollback, stats.StopFutility:
		g.Verdict = GateRollback
	case stats.HaltSRM:
		g.Verdict = GateInconclusive
	default: // continue, advance, or no data yet
		g.Verdict = GateContinue
	}
	// The lifecycle's end outranks a fresh look at the data.
	switch r.Status {
	case "promoted":
		g.Verdict, g.Decision = GatePromote, "promoted"
	case "rolled_back", "stopped":
		g.Verdict, g.Decision = GateRollback, r.Status
	case "paused":
		g.Verdict = GateInconclusive
	}
	g.Primary = gatePrimary(r)
	return g
}

// gatePrimary picks the primary metric's result of the winner, or of the
// first candidate.
func gatePrimary(r Report) *GateMetric {
	vs := r.Decision.Variants
	if len(vs) == 0 {
		return nil
	}
	v := vs[0]
	if w := r.Decision.Winner; w != nil {
		for _, c := range vs {
			if c.Variant == *w {
				v = c
			}
		}
	}
	for _, m := range v.Metrics {
		if m.Role != "primary" {
			continue
		}
		g := &GateMetric{Metric: m.Metric, Relative: m.Relative, Lift: m.Lift, CILow: m.CILow, CIHigh: m.CIHigh}
		if v.Variant >= 0 && v.Variant < len(r.Variants) {
			g.Variant = r.Variants[v.Variant].Name
		}
		return g
	}
	return nil
}

// gateJSON serves GET /api/v1/experiments/{id}/gate, for Argo Rollouts'
// web metric provider: always 200 with the Gate for a known experiment,
// so the AnalysisTemplate's conditions decide.
func (h *Reports) gateJSON(c *gin.Context) {
	r, err := h.Report(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, reportFailed(c, err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gateOf(r))
}

// flaggerPayload is what Flagger POSTs to a webhook.
type flaggerPayload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata"`
}

const flaggerPayloadKey = "abgate.flagger"

// flaggerAuth reads Flagger's payload, and, since Flagger cannot send
// headers, takes a bearer token from its metadata ("token") when the
// request has no Authorization header, before the auth middleware runs.
func flaggerAuth(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, 64<<10))
	if err != nil {
		abort(c, newError(http.StatusBadRequest, "invalid_body", "", "could not read the webhook payload"))
		return
	}
	var p flaggerPayload
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &p); err != nil {
			abort(c, newError(http.StatusBadRequest, "invalid_json", "", "the body is not Flagger's webhook payload: "+err.Error()))
			return
		}
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if c.GetHeader("Authorization") == "" && p.Metadata["token"] != "" {
		c.Request.Header.Set("Authorization", "Bearer "+p.Metadata["token"])
	}
	c.Set(flaggerPayloadKey, p)
	c.Next()
}

// flaggerHooks says, for each Flagger webhook type, which gate verdicts
// pass (answer 200). Every other verdict answers 412, which Flagger reads
// as a failed check (rollout), a halt (confirm-*), or "do not roll back"
// (rollback: Flagger rolls back on 200).
var flaggerHooks = map[string][]string{
	"pre-rollout":              {GatePromote, GateContinue},
	"rollout":                  {GatePromote, GateContinue, GateInconclusive},
	"confirm-rollout":          {GatePromote, GateContinue},
	"confirm-traffic-increase": {GatePromote, GateContinue},
	"confirm-promotion":        {GatePromote},
	"rollback":                 {GateRollback},
}

// flaggerGate serves POST /api/v1/gates/flagger/{hook}: the experiment is
// named by the payload's metadata.experiment.
func (h *Reports) flaggerGate(c *gin.Context) {
	hook := c.Param("hook")
	pass, ok := flaggerHooks[hook]
	if !ok {
		abort(c, newError(http.StatusNotFound, "unknown_hook", "hook",
			"unknown Flagger webhook type "+hook+"; use one of pre-rollout, rollout, confirm-rollout, confirm-traffic-increase, confirm-promotion, rollback"))
		return
	}
	p, _ := c.Get(flaggerPayloadKey)
	id := p.(flaggerPayload).Metadata["experiment"]
	if id == "" {
		abort(c, newError(http.StatusBadRequest, "missing_experiment", "metadata.experiment",
			"name the abgate experiment in the webhook's metadata: {experiment: <id>}"))
		return
	}
	r, err := h.Report(c.Request.Context(), id)
	if err != nil {
		abort(c, reportFailed(c, err))
		return
	}
	g := gateOf(r)
	c.Header("Cache-Control", "no-store")
	for _, v := range pass {
		if v == g.Verdict {
			c.JSON(http.StatusOK, g)
			return
		}
	}
	c.JSON(http.StatusPreconditionFailed, g)
}

// registerGates mounts the deployment-controller gates behind read access.
func (h *Reports) registerGates(r gin.IRouter, mw []gin.HandlerFunc) {
	r.GET("/api/v1/experiments/:id/gate", append(append([]gin.HandlerFunc(nil), mw...), h.gateJSON)...)
	r.POST("/api/v1/gates/flagger/:hook", append(append([]gin.HandlerFunc{flaggerAuth}, mw...), h.flaggerGate)...)
}
