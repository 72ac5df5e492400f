package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/webhook"
)

// A reload (SIGHUP) tells the truth: every field it can change is
// applied, and a new config that changes a field only a restart can
// apply is refused whole, naming each such field, so "config reloaded"
// always means the file on disk is what runs (issue 13).
//
// Applied live: experiments and routes (with the reshuffle check),
// upstreams, server.max_body_bytes, unit_header, unit_body_field and
// shutdown_timeout, auth (tokens, open_reads, open_feedback,
// protect_metrics, session_ttl), webhooks and the controller section.

// restartFields lists the config fields a running process cannot change,
// each with how to read it. Secrets are compared, never printed.
var restartFields = []struct {
	path string
	get  func(*experiments.Config) any
}{
	{"server.listen", func(c *experiments.Config) any { return c.Server.Listen }},
	{"server.admin_listen", func(c *experiments.Config) any { return c.Server.AdminListen }},
	{"server.token_secret", func(c *experiments.Config) any { return c.Server.TokenSecret }},
	{"server.token_ttl", func(c *experiments.Config) any { return c.Server.TokenTTL }},
	{"server.body_read_timeout", func(c *experiments.Config) any { return c.Server.BodyReadTimeout }},
	{"server.max_inflight_body_bytes", func(c *experiments.Config) any { return c.Server.MaxInflightBodyBytes }},
	{"server.max_inflight_requests", func(c *experiments.Config) any { return c.Server.MaxInflightRequests }},
	{"redis", func(c *experiments.Config) any { return c.Redis }},
	{"recording", func(c *experiments.Config) any { return c.Recording }},
}

// needsRestart names the fields of next that differ from live and that
// only a restart can apply.
func needsRestart(live, next *experiments.Config) []string {
	var fields []string
	for _, f := range restartFields {
		if !reflect.DeepEqual(f.get(live), f.get(next)) {
			fields = append(fields, f.path)
		}
	}
	return fields
}

// configVersion names a config by the hash of its content, secrets
// included (hashed, never shown), so the log, /readyz and the audit trail
// can say which version is live.
func configVersion(c *experiments.Config) string {
	h := sha256.New()
	b, _ := yaml.Marshal(c) // secrets come out as [redacted]: added below
	h.Write(b)
	for _, s := range secretsOf(c) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// secretsOf lists every secret's value in a fixed order.
func secretsOf(c *experiments.Config) []string {
	out := []string{c.Server.TokenSecret.Reveal(), c.Redis.Password.Reveal()}
	for _, u := range c.Upstreams {
		out = append(out, u.Name, u.APIKey.Reveal())
	}
	for _, w := range c.Webhooks {
		out = append(out, w.URL, w.Secret.Reveal())
	}
	for _, t := range c.Auth.Tokens {
		out = append(out, t.Name, t.Token.Reveal())
	}
	return out
}

// hookSwitch lets a reload replace the webhook receivers: a new Sender
// takes every later transition and alert, and the old one finishes its
// queues in the background.
type hookSwitch struct {
	cur atomic.Pointer[webhook.Sender]
	log *slog.Logger
}

func newHookSwitch(s *webhook.Sender, log *slog.Logger) *hookSwitch {
	h := &hookSwitch{log: log}
	h.cur.Store(s)
	return h
}

func (h *hookSwitch) Notify(t experiments.Transition, s experiments.State) { h.cur.Load().Notify(t, s) }

func (h *hookSwitch) NotifyDrift(ctx context.Context, a drift.Alert) {
	h.cur.Load().NotifyDrift(ctx, a)
}

// swap installs next and drains the previous sender for up to a minute.
func (h *hookSwitch) swap(next *webhook.Sender) {
	old := h.cur.Swap(next)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := old.Close(ctx); err != nil {
			h.log.Warn("webhooks of the previous config not all delivered", "err", err)
		}
	}()
}

// Close drains the current sender (shutdown).
func (h *hookSwitch) Close(ctx context.Context) error { return h.cur.Load().Close(ctx) }

// changedSections names, for the log, the top-level sections a reload
// changes.
func changedSections(live, next *experiments.Config) string {
	lv, nv := reflect.ValueOf(*live), reflect.ValueOf(*next)
	var out []string
	for i := 0; i < lv.NumField(); i++ {
		if !reflect.DeepEqual(lv.Field(i).Interface(), nv.Field(i).Interface()) {
			tag := strings.Split(lv.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				tag = strings.ToLower(lv.Type().Field(i).Name)
			}
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
