package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/internal/fakemodel"
	"github.com/abgate/abgate/stats"
)

// liveJudgeExperiment is the report fixture's experiment with a live
// judge during its ramp steps; its human signal is the primary metric,
// thumbs.
func liveJudgeExperiment() *experiments.Experiment {
	e := shadowExperiment()
	e.Shadow.LivePercent = 20
	return e
}

// judgedUsers simulates a ramp step's live judge and feedback into a
// memstore, through the stores' joint sums: each judged user's answers
// have a quality q (the arm's mean ± 0.4, uniform); the fake judge
// compares perUser of them with the other model's answers and prefers
// the candidate's style by styleBonus, a bias people don't share; with
// probability labelled (at random: missing at random) the user also
// gives perUser thumbs, each up with probability q (with human_metric
// correction: a correction for each thumb down). It returns the
// snapshot.
func judgedUsers(t testing.TB, e *experiments.Experiment, seed uint64, perArm int, qBase, qCand, labelled, styleBonus float64) experiments.Snapshot {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 14))
	jd := &fakemodel.Judge{Sensitivity: 1}
	m, _ := e.HumanMetric()
	st := memstore.New()
	b := &experiments.Batch{ID: "b1", Experiment: e.ID, Phase: 2, Joint: e.JudgePairs()}
	mean := []float64{qBase, qCand}
	const perUser = 4
	for v := range 2 {
		for i := range perArm {
			var u experiments.UnitKey
			u[0], u[1], u[2] = byte(v), byte(i), byte(i>>8)
			q := mean[v] + 0.8*(r.Float64()-0.5)
			for range perUser {
				other := mean[1-v] + 0.8*(r.Float64()-0.5)
				qs, qo := q, other // as the judge sees them
				if v == 1 {
					qs += styleBonus
				} else {
					qo += styleBonus
				}
				f := 0.0
				if r.Float64() < jd.PreferA(qs, qo) {
					f = 1
				}
				b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: u, Metric: experiments.MetricJudgeServed, DX: f, DY: 1})
				if v == 1 {
					b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: u, Metric: experiments.MetricJudgeScore, DX: f, DY: 1})
				}
			}
			if r.Float64() < labelled {
				for range perUser {
					h := 0.0
					if r.Float64() < q {
						h = 1
					}
					if m.Name == experiments.MetricCorrection { // corrected when unhappy
						h = 1 - h
					}
					b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: u, Metric: m.Name, DX: h, DY: 1})
				}
			}
		}
	}
	if _, err := st.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Summaries(context.Background(), e.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func rampReport(e *experiments.Experiment, snap experiments.Snapshot) Report {
	st := ReportStatus{Status: "running", Step: 1, Period: 2, Started: reportT0}
	return BuildReport(e, st, nil, snap, nil, reportT0.Add(3*time.Hour))
}

// TestReportJudgeHumansCorrects: with a judge biased toward the
// candidate's style, the judge's own lift is far off the true lift in
// people's thumbs-up rate (+10 points), while the corrected lift's
// interval covers it and is narrower than feedback alone's; the judge's
// bias shows on each arm, in opposite directions.
func TestReportJudgeHumansCorrects(t *testing.T) {
	t.Parallel()
	e := liveJudgeExperiment()
	const truth = 0.10
	r := rampReport(e, judgedUsers(t, e, 1, 3000, 0.55, 0.65, 0.3, 0.15))
	if r.Judge == nil || r.Judge.Humans == nil {
		t.Fatalf("no judge vs humans part: %+v", r.Judge)
	}
	h := r.Judge.Humans
	if h.HumanMetric != experiments.MetricThumbs || h.JudgeMetric != experiments.MetricJudgeServed || len(h.Candidates) != 1 || len(h.Arms) != 2 {
		t.Fatalf("part %+v", h)
	}
	c := h.Candidates[0]
	if !c.Corrected.Valid || !c.HumanOnly.Valid || c.JudgeLift == nil || c.LabelGain == nil {
		t.Fatalf("candidate %+v", c)
	}
	if ci := c.JudgeCI; ci.Low <= truth+0.1 {
		t.Errorf("the judge's own lift %v (CI %v) is not off: the fixture's judge bias is too weak", *c.JudgeLift, ci)
	}
	if ci := c.Corrected.CI; !(ci.Low < truth && truth < ci.High) {
		t.Errorf("corrected lift %v, CI %v does not cover the true lift %v", c.Corrected.Lift, ci, truth)
	}
	if !(*c.LabelGain > 1.1) {
		t.Errorf("label gain %v: the correction should narrow the interval", *c.LabelGain)
	}
	base, cand := h.Arms[0], h.Arms[1]
	if base.Bias == nil || cand.Bias == nil || !(base.BiasCI.High < 0) || !(cand.BiasCI.Low > 0) {
		t.Errorf("judge bias: base %v %v, candidate %v %v; want below 0 and above 0", base.Bias, base.BiasCI, cand.Bias, cand.BiasCI)
	}
	if k := cand.Agreement.Kappa; k == nil || !(*k > 0) {
		t.Errorf("candidate agreement %+v: want κ > 0 (judge and people both track quality)", cand.Agreement)
	}
	if !strings.Contains(c.Sentence, "Correcting the judge with people's feedback") {
		t.Errorf("sentence %q", c.Sentence)
	}
	var txt, md, page bytes.Buffer
	if err := RenderText(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := renderPage(&page, r, ""); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": txt.String(), "markdown": md.String(), "html": page.String()} {
		if !strings.Contains(strings.ToLower(out), "judge vs humans") || !strings.Contains(out, "kappa") {
			t.Errorf("%s report has no judge vs humans part", name)
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

// TestReportJudgeHumansLowerIsBetter: with a lower-is-better human
// signal (corrections), PPI runs on the judge's direction, so the judge's
// scores are used (λ > 0) and the corrected lift in the correction rate
// (−10 points) is covered by a narrower interval than feedback alone's.
func TestReportJudgeHumansLowerIsBetter(t *testing.T) {
	t.Parallel()
	e := liveJudgeExperiment()
	e.Judge.HumanMetric = experiments.MetricCorrection
	const truth = -0.10
	r := rampReport(e, judgedUsers(t, e, 4, 3000, 0.55, 0.65, 0.3, 0.15))
	c := r.Judge.Humans.Candidates[0]
	if !c.Corrected.Valid || !(c.Corrected.Lambda[0] > 0.1) || !(c.Corrected.Lambda[1] > 0.1) {
		t.Fatalf("corrected %+v: want λ > 0.1 in both arms", c.Corrected)
	}
	if ci := c.Corrected.CI; !(ci.Low < truth && truth < ci.High) || !(c.Corrected.Lift < 0) {
		t.Errorf("corrected lift %v, CI %v: want it to cover %v", c.Corrected.Lift, ci, truth)
	}
	if g := c.LabelGain; g == nil || !(*g > 1.1) {
		t.Errorf("label gain %v", g)
	}
	if k := r.Judge.Humans.Arms[1].Agreement.Kappa; k == nil || !(*k > 0) {
		t.Errorf("agreement %+v: the judge agrees with people on which answers are good", r.Judge.Humans.Arms[1].Agreement)
	}
}

// TestReportJudgeHumansInsufficient: judged users without feedback (or
// one labelled user) give a sentence saying so and no numbers, never
// NaN; an experiment without a live judge has no part.
func TestReportJudgeHumansInsufficient(t *testing.T) {
	t.Parallel()
	e := liveJudgeExperiment()
	for _, labelled := range []float64{0, 0.0005} {
		r := rampReport(e, judgedUsers(t, e, 2, 1000, 0.5, 0.5, labelled, 0))
		h := r.Judge.Humans
		if h == nil || len(h.Candidates) != 1 {
			t.Fatalf("labelled %v: part %+v", labelled, h)
		}
		c := h.Candidates[0]
		if c.Corrected.Valid || c.LabelGain != nil || !strings.HasPrefix(c.Sentence, "Not enough data yet") {
			t.Errorf("labelled %v: candidate %+v", labelled, c)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Errorf("labelled %v: JSON: %v", labelled, err)
		}
		var txt bytes.Buffer
		if err := RenderText(&txt, r); err != nil || strings.Contains(txt.String(), "NaN") {
			t.Errorf("labelled %v: text %v %q", labelled, err, txt.String())
		}
	}
	plain := shadowExperiment() // no live_percent: no joint sums asked
	if r := rampReport(plain, judgedUsers(t, liveJudgeExperiment(), 3, 200, 0.5, 0.6, 0.5, 0)); r.Judge != nil && r.Judge.Humans != nil {
		t.Errorf("a judge without live_percent got a judge vs humans part")
	}
}

// FuzzReportJudgeHumans: whatever joint sums a store returns (empty,
// negative, zero variance, huge, NaN or Inf from a corrupted store), the
// judge vs humans part never panics and never carries NaN or Inf: its
// JSON encodes and its text shows no NaN.
func FuzzReportJudgeHumans(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, 26)) // every sum 1
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, 26)) // +Inf
	f.Add(bytes.Repeat([]byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 26)) // NaN
	e := liveJudgeExperiment()
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() float64 {
			if len(data) < 8 {
				return float64(len(data))
			}
			x := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			return x
		}
		snap := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{
			{Variant: 1, Metric: experiments.MetricJudgeScore}: {N: 3, SumX: 2, SumX2: 2, SumY: 3, SumY2: 3, SumXY: 2},
		}, Joint: map[experiments.JointKey]experiments.JointSummary{}}
		for v := range 2 {
			var s experiments.JointSummary
			p := &s.PPI
			for _, x := range []*float64{&p.Labeled, &p.SumHuman, &p.SumHuman2, &p.SumJudge, &p.SumJudge2, &p.SumHumanJudge,
				&p.Unlabeled, &p.SumJudgeU, &p.SumJudgeU2, &s.Agree[0][0], &s.Agree[0][1], &s.Agree[1][0], &s.Agree[1][1]} {
				*x = next()
			}
			snap.Joint[experiments.JointKey{Variant: v, Human: experiments.MetricThumbs, Judge: experiments.MetricJudgeServed}] = s
		}
		r := rampReport(e, snap)
		if r.Judge == nil {
			t.Fatal("no judge section")
		}
		if _, err := json.Marshal(r.Judge); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		var txt bytes.Buffer
		if err := RenderText(&txt, r); err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(txt.String(), "JUDGE VS HUMANS"); i >= 0 && (strings.Contains(txt.String()[i:], "NaN") || strings.Contains(txt.String()[i:], "Inf")) {
			t.Fatalf("text shows NaN or Inf:\n%s", txt.String()[i:])
		}
	})
}

// TestGoodnessScale: the judge's bias is measured against the human
// signal rescaled to [0,1] with 1 the good end, from the sums alone: the
// transformed sums equal those of the rescaled values, and the
// agreement table counts a lower-is-better signal's good side below the
// midpoint.
func TestGoodnessScale(t *testing.T) {
	t.Parallel()
	users := [][2]float64{{1, 0.25}, {5, 1}, {3, 0.5}, {4, 0.75}, {2, 0}} // (h, f)
	for _, m := range []experiments.MetricInfo{
		{Name: "rating", Min: 1, Max: 5, Better: experiments.HigherIsBetter},
		{Name: "slowness", Min: 1, Max: 5, Better: experiments.LowerIsBetter},
	} {
		var s, want stats.PPISummary
		for _, u := range users {
			h, f := u[0], u[1]
			g := (h - m.Min) / (m.Max - m.Min)
			if m.Better == experiments.LowerIsBetter {
				g = 1 - g
			}
			s = addUser(s, h, f)
			want = addUser(want, g, f)
		}
		got := goodnessScale(s, m)
		for i, pair := range [][2]float64{{got.SumHuman, want.SumHuman}, {got.SumHuman2, want.SumHuman2}, {got.SumHumanJudge, want.SumHumanJudge},
			{got.SumJudge, want.SumJudge}, {got.Labeled, want.Labeled}} {
			if math.Abs(pair[0]-pair[1]) > 1e-12 {
				t.Errorf("%s: sum %d = %v, want %v", m.Name, i, pair[0], pair[1])
			}
		}
	}
	// cells [judge > ½][h > cut]: 3 judge-good users with h above the cut,
	// 1 judge-good below, 2 judge-bad above, 4 judge-bad below.
	c := [2][2]float64{{4, 2}, {1, 3}}
	if got := agreementTable(c, experiments.HigherIsBetter); got[1][1] != 3 || got[0][0] != 4 || got[1][0] != 1 {
		t.Errorf("higher is better: %v", got)
	}
	if got := agreementTable(c, experiments.LowerIsBetter); got[1][1] != 1 || got[0][0] != 2 || got[1][0] != 3 || got[0][1] != 4 {
		t.Errorf("lower is better: %v", got)
	}
}

func addUser(s stats.PPISummary, h, f float64) stats.PPISummary {
	s.Labeled++
	s.SumHuman += h
	s.SumHuman2 += h * h
	s.SumJudge += f
	s.SumJudge2 += f * f
	s.SumHumanJudge += h * f
	return s
}
