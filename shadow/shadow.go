// Package shadow is the shadow stage's replay (issue 14; docs/rollout.md,
// "Shadow stage"). The gateway offers it requests the base answered for
// experiments in shadow (gateway.Shadower): a bounded queue per
// experiment takes them without blocking (dropped and counted when
// full), and a bounded pool of workers replays each request to every
// candidate's upstream (stream false, max_tokens capped), asks the LLM
// judge (package judge) to compare the candidate's answer with the
// base's, and records the verdict as the user's judge_score and
// judge_first feedback on the candidate's variant, so the recorder keeps
// the per-user sums stats.JudgeGate reads. During ramp steps the live
// judge (shadow.live_percent) judges sampled requests either arm served
// against the other model's answer and records, besides a candidate's
// judge_score, each arm's judge_served: the judge's score of its own
// answers, which the report corrects with human feedback.
//
// Replay and judge spend are counted here (Stats), never as either arm's
// cost. Prompts and answers live only in memory, unless the experiment's
// judge sets retain_prompts: then each verdict's feedback record carries
// them, with the configured retention.
//
// It imports experiments (vocabulary) and judge (the client); cmd wires
// it between the gateway and the recorder.
package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/judge"
)

// Recorder takes the judge's verdicts (recorder.Recorder implements it).
type Recorder interface {
	Feedback(experiments.Feedback) error
}

// MaxReplayTokens caps a replay's max_tokens: the candidate's answer is
// for the judge, not a user.
const MaxReplayTokens = 1024

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// Service is the replay: one lane (queue, workers, judge) per experiment
// with a shadow block. Safe for concurrent use.
type Service struct {
	rec Recorder
	hc  *http.Client
	log *slog.Logger
	now func() time.Time

	lanes atomic.Pointer[map[string]*lane] // read on the request path

	mu     sync.Mutex // serialises Update and Close
	counts map[string]*counters
	closed bool
	wg     sync.WaitGroup
}

// New returns a Service for cfg's experiments; call Update on reload and
// Close on shutdown.
func New(cfg *experiments.Config, rec Recorder, opts ...Option) (*Service, error) {
	s := &Service{rec: rec, log: slog.Default(), now: time.Now, counts: map[string]*counters{}}
	for _, o := range opts {
		o(s)
	}
	if s.hc == nil {
		s.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}}
	}
	empty := map[string]*lane{}
	s.lanes.Store(&empty)
	return s, s.Update(cfg)
}

// lane is one experiment's replay.
type lane struct {
	exp    experiments.Experiment
	ups    []experiments.Upstream // ups[v] is variant v's upstream
	unitF  string                 // the unit body field, never replayed
	judge  *judge.Judge
	q      chan experiments.ShadowSample
	shareB uint16 // of experiments.Buckets
	liveB  uint16 // the live judge's share during ramp steps
	header string
	st     *counters
	cancel context.CancelFunc

	capMu  sync.Mutex
	judged map[capKey]int // per unit and period, bounded by maxCapEntries
}

type capKey struct {
	unit   experiments.UnitKey
	period int
}

// maxCapEntries bounds a lane's memory of judged users; past it the
// store's vote cap alone holds the per-user bound.
const maxCapEntries = 1 << 16

// Update applies a (reloaded) config: lanes of experiments whose judge,
// shadow, variants or upstreams changed are replaced (their queued
// samples dropped), others keep running; counters survive.
func (s *Service) Update(cfg *experiments.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("shadow: closed")
	}
	old := *s.lanes.Load()
	next := make(map[string]*lane, len(old))
	var errs []error
	for i := range cfg.Experiments {
		e := &cfg.Experiments[i]
		if e.Shadow == nil || e.Judge == nil {
			continue
		}
		ups := make([]experiments.Upstream, len(e.Variants))
		for v := range e.Variants {
			for k := range cfg.Upstreams {
				if cfg.Upstreams[k].Name == e.Variants[v].Upstream {
					ups[v] = cfg.Upstreams[k]
				}
			}
		}
		if l := old[e.ID]; l != nil && reflect.DeepEqual(l.exp.Judge, e.Judge) && reflect.DeepEqual(l.exp.Shadow, e.Shadow) &&
			reflect.DeepEqual(l.exp.Variants, e.Variants) && reflect.DeepEqual(l.ups, ups) && l.unitF == cfg.Server.UnitBodyField {
			next[e.ID] = l
			continue
		}
		l, err := s.newLane(e, cfg, ups)
		if err != nil {
			errs = append(errs, fmt.Errorf("experiment %q: %w", e.ID, err))
			continue
		}
		next[e.ID] = l
	}
	s.lanes.Store(&next)
	for id, l := range old {
		if next[id] != l {
			l.cancel()
		}
	}
	return errors.Join(errs...)
}

func (s *Service) newLane(e *experiments.Experiment, cfg *experiments.Config, ups []experiments.Upstream) (*lane, error) {
	jc, err := judge.ConfigFrom(e.Judge, cfg.Upstreams)
	if err != nil {
		return nil, err
	}
	j, err := judge.New(jc, s.hc)
	if err != nil {
		return nil, err
	}
	st := s.counts[e.ID]
	if st == nil {
		st = &counters{}
		s.counts[e.ID] = st
	}
	if old := st.judge.Swap(j); old != nil {
		st.judgeCarryNano.Add(int64(old.Stats().Cost * 1e9))
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lane{
		exp: *e, ups: ups, unitF: cfg.Server.UnitBodyField, judge: j,
		q:      make(chan experiments.ShadowSample, max(e.Shadow.QueueSize, 1)),
		shareB: uint16(e.Shadow.Percent * experiments.Buckets / 100),
		liveB:  uint16(e.Shadow.LivePercent * experiments.Buckets / 100),
		header: e.Judge.PrivateHeader, st: st, cancel: cancel,
		judged: map[capKey]int{},
	}
	if l.header == "" {
		l.header = experiments.DefaultJudgePrivateHeader
	}
	if l.unitF == "" {
		l.unitF = experiments.DefaultUnitBodyField
	}
	for range max(e.Judge.MaxConcurrency, 1) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.work(ctx, l)
		}()
	}
	return l, nil
}

// Close stops the workers; queued samples are dropped (the stage is
// judged on whatever was recorded).
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	for _, l := range *s.lanes.Load() {
		l.cancel()
	}
	empty := map[string]*lane{}
	s.lanes.Store(&empty)
	s.mu.Unlock()
	s.wg.Wait()
}

// Sample implements gateway.Shadower: the unit's shadow hash,
// experiments.Bucket(salt, "shadow", unit), is below the stage's share
// (live, during a ramp step: its "judge-live" hash below live_percent),
// and the request does not carry the private header.
func (s *Service) Sample(experiment, salt, unit string, live bool, hdr http.Header) bool {
	l := (*s.lanes.Load())[experiment]
	if l == nil || unit == "" || (live && l.liveB == 0) {
		return false
	}
	if _, private := hdr[l.header]; private {
		l.st.private.Add(1)
		return false
	}
	in := experiments.Bucket(salt, "shadow", unit) < l.shareB
	if live {
		in = experiments.Bucket(salt, "judge-live", unit) < l.liveB
	}
	if in && len(l.q) >= cap(l.q) {
		// Offer would drop it: say no before the gateway copies the
		// request and the answer for nothing.
		l.st.droppedFull.Add(1)
		return false
	}
	return in
}

// Offer implements gateway.Shadower: a non-blocking send into the
// experiment's queue. A user who already has max_per_user comparisons in
// the period is not replayed again, and a base-served live sample only
// while the queue is less than half full.
func (s *Service) Offer(smp experiments.ShadowSample) bool {
	l := (*s.lanes.Load())[smp.Experiment]
	if l == nil {
		return false
	}
	if smp.Live && smp.Variant == 0 && 2*len(l.q) >= max(cap(l.q), 2) {
		// Base users are most of a ramp step's traffic: they may fill
		// only half the queue, so the candidate's live judgments (the
		// gate's data) are never crowded out.
		l.st.droppedFull.Add(1)
		return false
	}
	k := capKey{smp.Unit, smp.Period}
	l.capMu.Lock()
	n := l.judged[k]
	capped := n >= max(l.exp.Shadow.MaxPerUser, 1)
	if !capped {
		if len(l.judged) >= maxCapEntries {
			clear(l.judged)
		}
		l.judged[k] = n + 1
	}
	l.capMu.Unlock()
	if capped {
		l.st.capped.Add(1)
		return false
	}
	select {
	case l.q <- smp:
		l.st.queued.Add(1)
		return true
	default:
		l.st.droppedFull.Add(1)
		l.uncount(k)
		return false
	}
}

// uncount gives a user's slot back when its sample was not judged.
func (l *lane) uncount(k capKey) {
	l.capMu.Lock()
	if n := l.judged[k]; n > 0 {
		l.judged[k] = n - 1
	}
	l.capMu.Unlock()
}

func (s *Service) work(ctx context.Context, l *lane) {
	for {
		select {
		case <-ctx.Done():
			return
		case smp := <-l.q:
			if !s.one(ctx, l, smp) {
				l.uncount(capKey{smp.Unit, smp.Period})
			}
		}
	}
}

// one replays a sample to every candidate (a live sample, which a
// candidate answered: to the base) and records the verdicts; it reports
// whether any verdict was recorded.
func (s *Service) one(ctx context.Context, l *lane, smp experiments.ShadowSample) bool {
	if !l.judge.Ready() {
		// The judge would refuse this comparison (its rate or concurrency
		// is used up): don't parse the sample or spend a model call
		// replaying it. Under a sampled share larger than the judge's rate
		// this is most samples.
		l.st.judgeRefused.Add(1)
		return false
	}
	prompt, ok := promptText(smp.Body)
	served, ok2 := answerText(smp.Answer, smp.Stream)
	if !ok || !ok2 || served == "" || smp.Variant < 0 || smp.Variant >= len(l.exp.Variants) {
		l.st.skipped.Add(1)
		return false
	}
	if smp.Variant > 0 {
		return s.live(ctx, l, smp, prompt, served)
	}
	if smp.Live {
		return s.liveBase(ctx, l, smp, prompt, served)
	}
	base := served
	return s.eachCandidate(ctx, l, smp, prompt, base, "shadow: replay failed", func(v int, cand string, verdict judge.Verdict) bool {
		return s.record(l, v, smp, prompt, base, cand, verdict)
	})
}

// eachCandidate replays smp to every candidate, has the judge compare
// each answer with base, and hands the verdicts to rec; failed replays and
// refused or failed comparisons are counted and skipped. It reports
// whether rec recorded any verdict.
func (s *Service) eachCandidate(ctx context.Context, l *lane, smp experiments.ShadowSample, prompt, base, failMsg string,
	rec func(v int, cand string, verdict judge.Verdict) bool) bool {
	recorded := false
	for v := 1; v < len(l.exp.Variants); v++ {
		cand, err := s.replay(ctx, l, v, smp)
		if err != nil {
			l.st.replayFailed.Add(1)
			if ctx.Err() == nil {
				s.log.Debug(failMsg, "experiment", l.exp.ID, "variant", l.exp.Variants[v].Name, "err", err)
			}
			continue
		}
		l.st.replayed.Add(1)
		if verdict, ok := s.compare(ctx, l, prompt, cand, base); ok && rec(v, cand, verdict) {
			recorded = true
		}
	}
	return recorded
}

// live judges a request candidate smp.Variant served during a ramp step
// against the base's answer to the same request, replayed now, and
// records the verdict on the serving candidate.
func (s *Service) live(ctx context.Context, l *lane, smp experiments.ShadowSample, prompt, cand string) bool {
	base, err := s.replay(ctx, l, 0, smp)
	if err != nil {
		l.st.replayFailed.Add(1)
		if ctx.Err() == nil {
			s.log.Debug("shadow: live replay to the base failed", "experiment", l.exp.ID, "err", err)
		}
		return false
	}
	l.st.replayed.Add(1)
	verdict, ok := s.compare(ctx, l, prompt, cand, base)
	if !ok || !s.record(l, smp.Variant, smp, prompt, base, cand, verdict) {
		return false
	}
	s.recordServed(l, smp.Variant, smp, verdict.Score)
	return true
}

// liveBase judges a request the base served during a ramp step against
// each candidate's answer to the same request, replayed now (blind and
// in random order, as every comparison), and records the judge's
// preference for the base's answer, 1 − the candidate's score, as the
// user's judge_served on the base: the base arm's judge score of its own
// answers, which prediction-powered inference needs (docs/statistics.md,
// "Judge vs humans"). It is never the candidate's judge_score: the user is in the
// base arm.
func (s *Service) liveBase(ctx context.Context, l *lane, smp experiments.ShadowSample, prompt, base string) bool {
	return s.eachCandidate(ctx, l, smp, prompt, base, "shadow: live replay to a candidate failed", func(_ int, _ string, verdict judge.Verdict) bool {
		if !s.recordServed(l, 0, smp, 1-verdict.Score) {
			return false
		}
		l.st.judged.Add(1)
		return true
	})
}

// recordServed writes the judge's preference for the answer arm v served
// as the user's judge_served on v (a live judgment).
func (s *Service) recordServed(l *lane, v int, smp experiments.ShadowSample, score float64) bool {
	f := experiments.Feedback{
		Experiment: l.exp.ID, Phase: smp.Period, Variant: v, Unit: smp.Unit,
		RequestID: experiments.ShadowVoteID(smp.Period), PerResponse: max(l.exp.Shadow.MaxPerUser, 1),
		Metric: experiments.MetricJudgeServed, Value: score, At: s.now(),
	}
	if err := s.rec.Feedback(f); err != nil {
		l.st.recordFailed.Add(1)
		return false
	}
	return true
}

// compare asks the judge, counting refusals and failures.
func (s *Service) compare(ctx context.Context, l *lane, prompt, cand, base string) (judge.Verdict, bool) {
	verdict, err := l.judge.Compare(ctx, prompt, cand, base)
	if err != nil {
		if errors.Is(err, judge.ErrBusy) || errors.Is(err, judge.ErrRateLimited) || errors.Is(err, judge.ErrBudget) {
			l.st.judgeRefused.Add(1)
		} else {
			l.st.judgeFailed.Add(1)
		}
		return judge.Verdict{}, false
	}
	return verdict, true
}

// record writes one verdict as the user's judge feedback on candidate v.
func (s *Service) record(l *lane, v int, smp experiments.ShadowSample, prompt, base, cand string, verdict judge.Verdict) bool {
	f := experiments.Feedback{
		Experiment: l.exp.ID, Phase: smp.Period, Variant: v, Unit: smp.Unit,
		RequestID: experiments.ShadowVoteID(smp.Period), PerResponse: max(l.exp.Shadow.MaxPerUser, 1),
		Metric: experiments.MetricJudgeScore, Value: verdict.Score, At: s.now(),
	}
	if j := l.exp.Judge; j.RetainPrompts {
		audit, _ := json.Marshal(struct {
			Prompt    string        `json:"prompt"`
			Base      string        `json:"base"`
			Candidate string        `json:"candidate"`
			Verdict   judge.Verdict `json:"verdict"`
		}{prompt, base, cand, verdict})
		f.Comment, f.TextExpires = string(audit), f.At.Add(time.Duration(j.RetainPromptsFor))
	}
	if err := s.rec.Feedback(f); err != nil {
		l.st.recordFailed.Add(1)
		return false
	}
	l.st.judged.Add(1)
	if verdict.BothOrders {
		f.Metric, f.Value, f.Comment, f.TextExpires = experiments.MetricJudgeFirst, verdict.FirstShownPreferred, "", time.Time{}
		if err := s.rec.Feedback(f); err != nil {
			l.st.recordFailed.Add(1)
		}
	}
	return true
}
