package stats

import (
	"encoding/json"
	"slices"
	"testing"
)

// judgeUsers is the preference Summary of users judged once each: wins
// score 1, ties ½, losses 0.
func judgeUsers(wins, ties, losses int) Summary {
	var s Summary
	for i := range wins + ties + losses {
		x := PreferenceLoss
		switch {
		case i < wins:
			x = PreferenceWin
		case i < wins+ties:
			x = PreferenceTie
		}
		addUser(&s, x, 1)
	}
	return s
}

// firstShownUsers is the FirstShown Summary of n comparisons asked in
// both orders, first of which preferred the first-shown answer both
// times (the others the second both times).
func firstShownUsers(first, n int) Summary {
	var s Summary
	for i := range n {
		x := 0.0
		if i < first {
			x = 1
		}
		addUser(&s, x, 1)
	}
	return s
}

// rampWithJudge is a ramp-step input whose only guardrail, an error
// rate of 1% in both arms over 20 000 users each, is non-inferior at a
// 2-point margin, with candidate 1's live judge data j.
func rampWithJudge(j JudgeInput, require bool) (Input, Policy) {
	const n = 20000
	errs := Summary{N: n, SumX: 200, SumX2: 200, SumY: n, SumY2: n, SumXY: 200}
	in := Input{Users: []float64{n, n}, Metrics: map[string][]Summary{"err": {errs, errs}}, Judge: []JudgeInput{{}, j}}
	p := Policy{
		Mode: RampMode, OneSided: true, MinUsers: 100,
		Guardrails: []Guardrail{{Metric: Metric{Name: "err", Kind: Mean, Better: LowerIsBetter, Bounds: &Bounds{0, 1}}, Margin: 0.02}},
		Judge:      &JudgeGuardrail{Policy: JudgePolicy{NonInferiorityMargin: 0.05, MaxPerUser: 1, MinUsers: 30, PositionBiasLimit: 0.1}, Require: require},
	}
	return in, p
}

func reasonCodes(d Decision) []ReasonCode {
	var out []ReasonCode
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

// TestDecideJudgeGuardrail: the live judge acts as a guardrail of the
// ramp: shown worse rolls back in both modes; under Require an advance
// waits for its non-inferiority; a position-biased judge never rolls
// back nor lets a candidate advance under Require.
func TestDecideJudgeGuardrail(t *testing.T) {
	t.Parallel()
	worse := JudgeInput{Preference: judgeUsers(150, 50, 400)}   // win rate 0.29
	better := JudgeInput{Preference: judgeUsers(400, 100, 100)} // 0.75
	few := JudgeInput{Preference: judgeUsers(10, 2, 8)}         // 20 users
	tied := JudgeInput{Preference: judgeUsers(200, 0, 200)}     // 0.5, not yet shown above 0.45
	biased := JudgeInput{Preference: judgeUsers(100, 0, 500), FirstShown: firstShownUsers(550, 600)}
	for _, tc := range []struct {
		name    string
		j       JudgeInput
		require bool
		verdict Verdict
		code    ReasonCode // a reason the decision must carry ("" none from the judge)
		judge   JudgeVerdict
	}{
		{"worse, watch", worse, false, Rollback, ReasonJudgeWorse, JudgeStopWorse},
		{"worse, guardrail", worse, true, Rollback, ReasonJudgeWorse, JudgeStopWorse},
		{"better, watch", better, false, Advance, "", JudgePass},
		{"better, guardrail", better, true, Advance, "", JudgePass},
		{"too few, watch", few, false, Advance, "", JudgeContinue},
		{"too few, guardrail", few, true, Continue, ReasonJudgePending, JudgeContinue},
		{"tied, guardrail", tied, true, Continue, ReasonJudgePending, JudgeContinue},
		{"no data, watch", JudgeInput{}, false, Advance, "", JudgeContinue},
		{"biased, watch", biased, false, Advance, ReasonPositionBias, JudgeInconclusive},
		{"biased, guardrail", biased, true, Continue, ReasonPositionBias, JudgeInconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, p := rampWithJudge(tc.j, tc.require)
			d := Decide(in, p)
			if d.Verdict != tc.verdict {
				t.Fatalf("verdict %s %v, want %s", d.Verdict, reasonCodes(d), tc.verdict)
			}
			if tc.code != "" && !slices.Contains(reasonCodes(d), tc.code) {
				t.Errorf("reasons %v lack %s", reasonCodes(d), tc.code)
			}
			if tc.code == "" && slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Variant != nil && r.Code != ReasonGuardrailOK }) {
				t.Errorf("unexpected candidate reasons %v", reasonCodes(d))
			}
			jd := d.Variants[0].Judge
			if jd == nil || jd.Verdict != tc.judge {
				t.Fatalf("judge decision %+v, want %s", jd, tc.judge)
			}
			if jd.Alpha != 0.05 {
				t.Errorf("judge ran at α %g, want the guardrails' 0.05", jd.Alpha)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The biased judge's data alone say "worse": bias overrides it.
	in, p := rampWithJudge(JudgeInput{Preference: biased.Preference}, false)
	if d := Decide(in, p); d.Verdict != Rollback {
		t.Errorf("the same preferences without the bias: %s, want rollback", d.Verdict)
	}
}

// TestDecideJudgeAlphaSplit: with two candidates the judge runs at
// GuardrailAlpha/2, like every guardrail, and a worse second candidate
// alone rolls the experiment back; the message names the win rate and
// its interval.
func TestDecideJudgeAlphaSplit(t *testing.T) {
	t.Parallel()
	in, p := rampWithJudge(JudgeInput{Preference: judgeUsers(300, 100, 200)}, false)
	in.Users = append(in.Users, in.Users[1])
	in.Metrics["err"] = append(in.Metrics["err"], in.Metrics["err"][1])
	in.Judge = append(in.Judge, JudgeInput{Preference: judgeUsers(150, 50, 400)})
	p.GuardrailAlpha = 0.04
	d := Decide(in, p)
	if d.Verdict != Rollback || d.Variants[0].Verdict == Rollback || d.Variants[1].Verdict != Rollback {
		t.Fatalf("verdict %s, variants %s %s", d.Verdict, d.Variants[0].Verdict, d.Variants[1].Verdict)
	}
	for _, v := range d.Variants {
		if v.Judge.Alpha != 0.02 {
			t.Errorf("variant %d judged at α %g, want 0.02", v.Variant, v.Judge.Alpha)
		}
	}
	i := slices.IndexFunc(d.Reasons, func(r Reason) bool { return r.Code == ReasonJudgeWorse })
	if i < 0 || *d.Reasons[i].Variant != 2 {
		t.Fatalf("reasons %+v", d.Reasons)
	}
	const want = "variant 2 is worse than control on the live judge: judge win rate 29.2% (anytime-valid 98% CI"
	if m := d.Reasons[i].Message; len(m) < len(want) || m[:len(want)] != want {
		t.Errorf("message %q", m)
	}
}

// TestDecideJudgeGuardrailPromote: at the last step (full mode) the
// judge guards the promotion like the advance: under Require a
// candidate better on the primary is promoted only once the judge shows
// it non-inferior; under watch the judge doesn't hold it.
func TestDecideJudgeGuardrailPromote(t *testing.T) {
	t.Parallel()
	const n = 20000
	thumbs := func(k float64) Summary { return Summary{N: n, SumX: k, SumX2: k, SumY: n, SumY2: n, SumXY: k} }
	for _, tc := range []struct {
		name    string
		j       JudgeInput
		require bool
		want    Verdict
	}{
		{"watch, judge pending", JudgeInput{Preference: judgeUsers(10, 0, 10)}, false, Promote},
		{"guardrail, judge pending", JudgeInput{Preference: judgeUsers(10, 0, 10)}, true, Continue},
		{"guardrail, judge passed", JudgeInput{Preference: judgeUsers(400, 100, 100)}, true, Promote},
		{"watch, judge worse", JudgeInput{Preference: judgeUsers(150, 50, 400)}, false, Rollback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, p := rampWithJudge(tc.j, tc.require)
			p.Mode = FullMode
			p.Primary = Metric{Name: "thumbs", Better: HigherIsBetter, Bounds: &Bounds{0, 1}}
			in.Metrics["thumbs"] = []Summary{thumbs(10000), thumbs(11000)}
			if d := Decide(in, p); d.Verdict != tc.want {
				t.Fatalf("verdict %s %v, want %s", d.Verdict, reasonCodes(d), tc.want)
			}
		})
	}
}
