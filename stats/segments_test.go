package stats

import (
	"math/rand/v2"
	"testing"
)

// binSummary simulates n users with one 0/1 observation each.
func binSummary(r *rand.Rand, n int, p float64) Summary {
	s := 0.0
	for i := 0; i < n; i++ {
		if r.Float64() < p {
			s++
		}
	}
	return Summary{N: float64(n), SumX: s, SumX2: s, SumY: float64(n), SumY2: float64(n), SumXY: s}
}

// segmentSim builds an Input with one dimension (language) whose values
// get shares of n users per variant; pc and pt are the thumbs-up rates of
// control and candidate per value.
func segmentSim(seed uint64, n int, shares, pc, pt []float64) Input {
	r := rand.New(rand.NewPCG(seed, 1))
	names := []string{"en", "de", "fr"}
	in := Input{Metrics: map[string][]Summary{"thumbs": {{}, {}}}}
	for i, sh := range shares {
		m := int(sh * float64(n))
		c, t := binSummary(r, m, pc[i]), binSummary(r, m, pt[i])
		in.Segments = append(in.Segments, Segment{Dimension: "language", Value: names[i], Metrics: map[string][]Summary{"thumbs": {c, t}}})
		tot := in.Metrics["thumbs"]
		tot[0], tot[1] = add(tot[0], c), add(tot[1], t)
	}
	in.Users = []float64{in.Metrics["thumbs"][0].N, in.Metrics["thumbs"][1].N}
	return in
}

func add(a, b Summary) Summary {
	return a.Add(b)
}

var segPolicy = Policy{Primary: Metric{Name: "thumbs"}}

// TestDecideSegmentHarm: a candidate better overall but worse for one
// language is not promoted, and the reason names the segment; the same
// candidate without the harmed segment is promoted.
func TestDecideSegmentHarm(t *testing.T) {
	t.Parallel()
	shares := []float64{0.5, 0.2, 0.3}
	pc := []float64{0.5, 0.5, 0.5}

	harmed := segmentSim(1, 40000, shares, pc, []float64{0.56, 0.38, 0.56})
	d := Decide(harmed, segPolicy)
	if d.Verdict == Promote {
		t.Fatalf("promoted a candidate that harms language=de: %+v", d.Reasons)
	}
	var found bool
	for _, r := range d.Reasons {
		if r.Code == ReasonSegmentHarm && r.Segment != nil && r.Segment.Dimension == "language" && r.Segment.Value == "de" {
			found = true
		}
	}
	if !found {
		t.Errorf("no segment_harm reason for language=de: %+v", d.Reasons)
	}
	// The overall primary result is still significantly better: the
	// refusal comes from the segment alone.
	for _, m := range d.Variants[0].Metrics {
		if m.Role == "primary" && !m.Better {
			t.Errorf("overall primary not significantly better (lift %v): the simulation does not test what it should", *m.Lift)
		}
	}
	var flagged []string
	for _, sr := range d.Segments {
		if sr.Harmed {
			flagged = append(flagged, sr.Value)
		}
	}
	if len(flagged) != 1 || flagged[0] != "de" {
		t.Errorf("flagged segments %v, want [de]", flagged)
	}

	fine := segmentSim(1, 40000, shares, pc, []float64{0.53, 0.53, 0.53})
	if d := Decide(fine, segPolicy); d.Verdict != Promote {
		t.Errorf("verdict %s without a harmed segment, want promote: %+v", d.Verdict, d.Reasons)
	}
}

// TestSegmentFalseFlags: with the candidate equal to the control in every
// segment, segments are flagged in at most about alpha of the runs.
func TestSegmentFalseFlags(t *testing.T) {
	t.Parallel()
	const runs = 200
	flags := 0
	for seed := uint64(0); seed < runs; seed++ {
		in := segmentSim(100+seed, 6000, []float64{0.5, 0.2, 0.3}, []float64{0.3, 0.5, 0.7}, []float64{0.3, 0.5, 0.7})
		d := Decide(in, segPolicy)
		for _, sr := range d.Segments {
			if sr.Harmed {
				flags++
				break
			}
		}
	}
	t.Logf("%d of %d A/A runs flagged a segment", flags, runs)
	// Family-wise alpha = 0.05 (one-sided harm: about half of it), and
	// the confidence sequence is conservative at a single look: expect
	// far fewer; allow 0.05 plus three standard errors.
	if limit := runs * (0.05 + 3*0.0154); flags > int(limit) {
		t.Errorf("%d of %d A/A runs flagged a segment, limit %.0f", flags, runs, limit)
	}
}

// TestDecideNoSegmentsUnchanged: without segments the decision has no
// segment results (the JSON is as before).
func TestDecideNoSegmentsUnchanged(t *testing.T) {
	t.Parallel()
	in := segmentSim(3, 40000, []float64{1}, []float64{0.5}, []float64{0.53})
	in.Segments = nil
	d := Decide(in, segPolicy)
	if d.Segments != nil {
		t.Errorf("segment results without segments: %+v", d.Segments)
	}
}

// TestSegmentFalseFlagsSequential: looking after every batch of users
// (20 looks), an A/A experiment flags a segment at any look in at most
// about alpha of the runs: the segment intervals are anytime-valid.
func TestSegmentFalseFlagsSequential(t *testing.T) {
	t.Parallel()
	const runs, looks, batch = 100, 20, 500
	shares := []float64{0.5, 0.2, 0.3}
	rates := []float64{0.3, 0.5, 0.7}
	flagged := 0
	for seed := uint64(0); seed < runs; seed++ {
		r := rand.New(rand.NewPCG(1000+seed, 2))
		segs := make([][2]Summary, len(shares))
		ever := false
		for range looks {
			in := Input{Metrics: map[string][]Summary{"thumbs": {{}, {}}}}
			for i, sh := range shares {
				m := int(sh * batch)
				segs[i][0] = add(segs[i][0], binSummary(r, m, rates[i]))
				segs[i][1] = add(segs[i][1], binSummary(r, m, rates[i]))
				in.Segments = append(in.Segments, Segment{Dimension: "language", Value: string(rune('a' + i)), Metrics: map[string][]Summary{"thumbs": {segs[i][0], segs[i][1]}}})
				tot := in.Metrics["thumbs"]
				tot[0], tot[1] = add(tot[0], segs[i][0]), add(tot[1], segs[i][1])
			}
			in.Users = []float64{in.Metrics["thumbs"][0].N, in.Metrics["thumbs"][1].N}
			for _, sr := range Decide(in, segPolicy).Segments {
				ever = ever || sr.Harmed
			}
		}
		if ever {
			flagged++
		}
	}
	t.Logf("%d of %d A/A runs flagged a segment at some look", flagged, runs)
	if limit := runs * (0.05 + 3*0.0218); flagged > int(limit) {
		t.Errorf("%d of %d runs flagged a segment at some look, limit %.0f", flagged, runs, limit)
	}
}
