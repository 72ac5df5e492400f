package experiments_test

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/abgate/abgate/experiments"
)

var update = flag.Bool("update", false, "recompute the expected answers in testdata/assignments.json (changes pinned behaviour: review the diff)")

// refMurmur3 is murmur3 x86 32-bit written from the reference
// (SMHasher MurmurHash3_x86_32), independent of the library Bucket uses.
// TestMurmur3Vectors checks it against published values.
func refMurmur3(data []byte, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(data) / 4
	for i := 0; i < n; i++ {
		k := binary.LittleEndian.Uint32(data[i*4:])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	tail := data[n*4:]
	var k uint32
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// assignmentCases is testdata/assignments.json: fixed expected answers,
// language-neutral like GrowthBook's cases.json, so an SDK or an offline
// job in another language can check it hashes exactly as abgate does.
type assignmentCases struct {
	Comment string `json:"comment"`
	// Murmur3: [input, seed, murmur3_32]. Published values, independent
	// of abgate.
	Murmur3 [][3]any `json:"murmur3"`
	// Bucket: [salt, suffix, unit, bucket] where bucket is
	// murmur3_32(salt + suffix + ":" + unit, seed 0) mod 10000.
	Bucket [][4]any `json:"bucket"`
	// Assign: [name, salt, unit, shares_bp, coverage_bp, holdout_bp,
	// bucket, variant, reason].
	Assign [][9]any `json:"assign"`
}

func loadAssignmentCases(t *testing.T) *assignmentCases {
	t.Helper()
	b, err := os.ReadFile("testdata/assignments.json")
	if err != nil {
		t.Fatal(err)
	}
	var c assignmentCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("testdata/assignments.json: %v", err)
	}
	return &c
}

func num(v any) int { return int(v.(float64)) }

func sharesOf(v any) []uint16 {
	var out []uint16
	for _, s := range v.([]any) {
		out = append(out, uint16(num(s)))
	}
	return out
}

// TestMurmur3Vectors checks the reference implementation against
// published values; TestBucketCases and FuzzAssign then check Bucket
// against the reference. (spaolacci/murmur3 can't serve as a second
// reference: it crashes under -race, see Bucket.)
func TestMurmur3Vectors(t *testing.T) {
	t.Parallel()
	c := loadAssignmentCases(t)
	if len(c.Murmur3) == 0 {
		t.Fatal("no murmur3 vectors")
	}
	for _, tc := range c.Murmur3 {
		in, seed, want := tc[0].(string), uint32(num(tc[1])), uint32(num(tc[2]))
		if got := refMurmur3([]byte(in), seed); got != want {
			t.Errorf("refMurmur3(%q, %d) = %#x, want %#x", in, seed, got, want)
		}
	}
}

func TestBucketCases(t *testing.T) {
	if !*update { // -update rewrites the shared file
		t.Parallel()
	}
	c := loadAssignmentCases(t)
	for i, tc := range c.Bucket {
		salt, suffix, unit := tc[0].(string), tc[1].(string), tc[2].(string)
		got := experiments.Bucket(salt, suffix, unit)
		// Independently: standard murmur3, seed 0, mod 10000.
		ref := uint16(refMurmur3([]byte(salt+suffix+":"+unit), 0) % 10000)
		if got != ref {
			t.Errorf("Bucket(%q, %q, %q) = %d, reference murmur3 gives %d", salt, suffix, unit, got, ref)
		}
		if *update {
			c.Bucket[i][3] = float64(got)
			continue
		}
		if want := uint16(num(tc[3])); got != want {
			t.Errorf("Bucket(%q, %q, %q) = %d, want %d", salt, suffix, unit, got, want)
		}
	}
	if *update {
		writeAssignmentCases(t, c, func(n *assignmentCases) { n.Bucket = c.Bucket })
	}
}

func TestAssignCases(t *testing.T) {
	if !*update { // -update rewrites the shared file
		t.Parallel()
	}
	c := loadAssignmentCases(t)
	for i, tc := range c.Assign {
		name := tc[0].(string)
		a := &experiments.Allocation{
			Salt:       tc[1].(string),
			Shares:     sharesOf(tc[3]),
			CoverageBP: uint16(num(tc[4])),
			HoldoutBP:  uint16(num(tc[5])),
			Serve:      -1,
		}
		unit := tc[2].(string)
		got := experiments.Assign(a, unit)
		if *update {
			c.Assign[i][6], c.Assign[i][7], c.Assign[i][8] = float64(got.Bucket), float64(got.Variant), got.Reason.String()
			continue
		}
		want := experiments.Assignment{Bucket: uint16(num(tc[6])), Variant: num(tc[7])}
		if got.Bucket != want.Bucket || got.Variant != want.Variant || got.Reason.String() != tc[8].(string) {
			t.Errorf("%s: Assign(%+v, %q) = {variant %d bucket %d %v}, want {variant %d bucket %d %v}",
				name, *a, unit, got.Variant, got.Bucket, got.Reason, want.Variant, want.Bucket, tc[8])
		}
	}
	if *update {
		writeAssignmentCases(t, c, func(n *assignmentCases) { n.Assign = c.Assign })
	}
}

var assignmentFileMu sync.Mutex

// writeAssignmentCases rewrites the file, one case per line. Both -update
// tests run in parallel, so each re-reads the file and sets its own part.
func writeAssignmentCases(t *testing.T, _ *assignmentCases, set func(*assignmentCases)) {
	t.Helper()
	assignmentFileMu.Lock()
	defer assignmentFileMu.Unlock()
	cur := loadAssignmentCases(t)
	set(cur)
	var b strings.Builder
	line := func(v any) string {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	fmt.Fprintf(&b, "{\n  \"comment\": %s,\n", line(cur.Comment))
	section := func(name string, rows []string, last bool) {
		fmt.Fprintf(&b, "  %q: [\n", name)
		for i, r := range rows {
			sep := ","
			if i == len(rows)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "    %s%s\n", r, sep)
		}
		if last {
			b.WriteString("  ]\n")
		} else {
			b.WriteString("  ],\n")
		}
	}
	var rows []string
	for _, r := range cur.Murmur3 {
		rows = append(rows, line(r))
	}
	section("murmur3", rows, false)
	rows = nil
	for _, r := range cur.Bucket {
		rows = append(rows, line(r))
	}
	section("bucket", rows, false)
	rows = nil
	for _, r := range cur.Assign {
		rows = append(rows, line(r))
	}
	section("assign", rows, true)
	b.WriteString("}\n")
	if err := os.WriteFile("testdata/assignments.json", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAssignOrder checks the documented decision order on hand-made
// allocations: serve, no unit, allowlist, coverage, holdout, variant.
func TestAssignOrder(t *testing.T) {
	t.Parallel()
	base := func() *experiments.Allocation {
		return &experiments.Allocation{
			Salt: "order", CoverageBP: experiments.Buckets, Shares: []uint16{5000},
			Allowlist: map[string]int{"qa": 1}, Serve: -1,
		}
	}
	tests := []struct {
		name    string
		mutate  func(a *experiments.Allocation)
		unit    string
		variant int // -1: any
		reason  experiments.Reason
	}{
		{"serve beats everything", func(a *experiments.Allocation) { a.Serve = 1; a.CoverageBP = 0 }, "", 1, experiments.ReasonServe},
		{"serve base", func(a *experiments.Allocation) { a.Serve = 0 }, "qa", 0, experiments.ReasonServe},
		{"no unit", func(a *experiments.Allocation) {}, "", 0, experiments.ReasonNoUnit},
		{"allowlist beats coverage", func(a *experiments.Allocation) { a.CoverageBP = 0 }, "qa", 1, experiments.ReasonAllowlist},
		{"allowlist beats holdout", func(a *experiments.Allocation) { a.HoldoutBP = experiments.Buckets }, "qa", 1, experiments.ReasonAllowlist},
		{"zero coverage", func(a *experiments.Allocation) { a.CoverageBP = 0 }, "u1", 0, experiments.ReasonNotCovered},
		{"full holdout", func(a *experiments.Allocation) { a.HoldoutBP = experiments.Buckets }, "u1", 0, experiments.ReasonHoldout},
		{"coverage before holdout", func(a *experiments.Allocation) { a.CoverageBP = 0; a.HoldoutBP = experiments.Buckets }, "u1", 0, experiments.ReasonNotCovered},
		{"no candidates", func(a *experiments.Allocation) { a.Shares = nil }, "u1", 0, experiments.ReasonHashed},
		{"full share", func(a *experiments.Allocation) { a.Shares = []uint16{experiments.Buckets} }, "u1", 1, experiments.ReasonHashed},
		{"zero share", func(a *experiments.Allocation) { a.Shares = []uint16{0} }, "u1", 0, experiments.ReasonHashed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := base()
			tc.mutate(a)
			got := experiments.Assign(a, tc.unit)
			if got.Variant != tc.variant || got.Reason != tc.reason {
				t.Errorf("Assign = %+v, want variant %d reason %v", got, tc.variant, tc.reason)
			}
			if got.Analysed() != (tc.reason == experiments.ReasonHashed) {
				t.Errorf("Analysed() = %v for %v", got.Analysed(), got.Reason)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	want := []string{"hashed", "no_unit", "allowlist", "not_covered", "holdout", "serve", "unknown"}
	for i, w := range want {
		if got := experiments.Reason(i).String(); got != w {
			t.Errorf("Reason(%d) = %q, want %q", i, got, w)
		}
	}
}

// randomUnits returns n distinct-looking ids from a fixed seed, in a mix
// of shapes real unit ids take.
func randomUnits(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	units := make([]string, n)
	for i := range units {
		switch i % 3 {
		case 0:
			units[i] = fmt.Sprintf("user-%d", r.IntN(1<<40))
		case 1:
			units[i] = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
		default:
			units[i] = fmt.Sprintf("u%d@example.com", i)
		}
	}
	return units
}

const splitUnits = 100_000

// TestAssignSplit: over 100,000 ids each variant's share is within one
// percentage point of its target, and repeated assignment is stable.
func TestAssignSplit(t *testing.T) {
	t.Parallel()
	units := randomUnits(1, splitUnits)
	tests := []struct {
		name   string
		shares []uint16
	}{
		{"A/B 50/50", []uint16{5000}},
		{"A/B 10% canary", []uint16{1000}},
		{"A/B 1% canary", []uint16{100}},
		{"A/B/C thirds", []uint16{3333, 3333}},
		{"A/B/C 10/20", []uint16{1000, 2000}},
		{"A/B/C/D 5/25/25", []uint16{500, 2500, 2500}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &experiments.Allocation{Salt: "split-" + tc.name, CoverageBP: experiments.Buckets, Shares: tc.shares, Serve: -1}
			counts := make([]int, len(tc.shares)+1)
			for _, u := range units {
				got := experiments.Assign(a, u)
				counts[got.Variant]++
				if again := experiments.Assign(a, u); again != got {
					t.Fatalf("Assign(%q) not deterministic: %+v then %+v", u, got, again)
				}
			}
			want := make([]float64, len(counts))
			want[0] = 1
			for i, s := range tc.shares {
				want[i+1] = float64(s) / experiments.Buckets
				want[0] -= want[i+1]
			}
			for v, c := range counts {
				got := float64(c) / splitUnits
				if math.Abs(got-want[v]) > 0.01 {
					t.Errorf("variant %d: %.4f of units, want %.4f ± 0.01", v, got, want[v])
				}
			}
		})
	}
}

// chiSquareUniform is Pearson's statistic for counts against a uniform
// distribution, and the critical value at significance alpha.
func chiSquareUniform(counts []int, alpha float64) (stat, critical float64) {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	for _, c := range counts {
		d := float64(c) - exp
		stat += d * d / exp
	}
	return stat, distuv.ChiSquared{K: float64(len(counts) - 1)}.Quantile(1 - alpha)
}

// TestBucketUniform: buckets of each decision's hash are uniform over 100
// cells (chi-square, alpha = 0.001 with fixed inputs, so the test is
// deterministic).
func TestBucketUniform(t *testing.T) {
	t.Parallel()
	units := randomUnits(2, splitUnits)
	for _, salt := range []string{"exp", "checkout-ft-2026", "exp#2"} {
		for _, suffix := range []string{"", "/coverage", "/holdout"} {
			counts := make([]int, 100)
			for _, u := range units {
				counts[experiments.Bucket(salt, suffix, u)/100]++
			}
			stat, crit := chiSquareUniform(counts, 0.001)
			if stat > crit {
				t.Errorf("salt %q suffix %q: chi-square %.1f > critical %.1f (99 df)", salt, suffix, stat, crit)
			}
		}
	}
	// Sequential ids are the worst case for a weak hash.
	counts := make([]int, 100)
	for i := range splitUnits {
		counts[experiments.Bucket("seq", "", fmt.Sprint(i))/100]++
	}
	if stat, crit := chiSquareUniform(counts, 0.001); stat > crit {
		t.Errorf("sequential ids: chi-square %.1f > critical %.1f", stat, crit)
	}
}

// TestDecisionsIndependent: coverage, holdout and variant use separate
// salts, so the variant split among covered (and not held out) units is
// the target split, and the variant hash is independent of coverage
// (2x2 chi-square).
func TestDecisionsIndependent(t *testing.T) {
	t.Parallel()
	units := randomUnits(3, splitUnits)
	for _, tc := range []struct {
		coverage, holdout uint16
		shares            []uint16
	}{
		{5000, 0, []uint16{5000}},
		{1000, 0, []uint16{5000}},
		{5000, 2000, []uint16{2000, 3000}},
	} {
		a := &experiments.Allocation{Salt: "indep", CoverageBP: tc.coverage, HoldoutBP: tc.holdout, Shares: tc.shares, Serve: -1}
		counts := make([]int, len(tc.shares)+1)
		analysed := 0
		// table[covered][candidate-range]
		var table [2][2]int
		for _, u := range units {
			got := experiments.Assign(a, u)
			covered := experiments.Bucket(a.Salt, "/coverage", u) < a.CoverageBP
			inCand := experiments.Assign(&experiments.Allocation{Salt: a.Salt, CoverageBP: experiments.Buckets, Shares: tc.shares, Serve: -1}, u).Variant != 0
			table[b2i(covered)][b2i(inCand)]++
			if got.Analysed() {
				analysed++
				counts[got.Variant]++
			} else if got.Variant != 0 {
				t.Fatalf("unanalysed unit on variant %d", got.Variant)
			}
		}
		name := fmt.Sprintf("coverage %d holdout %d shares %v", tc.coverage, tc.holdout, tc.shares)
		wantAnalysed := float64(tc.coverage) / experiments.Buckets * (1 - float64(tc.holdout)/experiments.Buckets)
		if got := float64(analysed) / splitUnits; math.Abs(got-wantAnalysed) > 0.01 {
			t.Errorf("%s: %.4f analysed, want %.4f", name, got, wantAnalysed)
		}
		rest := 1.0
		for i, s := range tc.shares {
			want := float64(s) / experiments.Buckets
			rest -= want
			if got := float64(counts[i+1]) / float64(analysed); math.Abs(got-want) > 0.01 {
				t.Errorf("%s: candidate %d has %.4f of analysed units, want %.4f", name, i+1, got, want)
			}
		}
		if got := float64(counts[0]) / float64(analysed); math.Abs(got-rest) > 0.01 {
			t.Errorf("%s: base has %.4f of analysed units, want %.4f", name, got, rest)
		}
		if stat, crit := chiSquare2x2(table, 0.001); stat > crit {
			t.Errorf("%s: coverage and variant hashes correlated: chi-square %.2f > %.2f", name, stat, crit)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func chiSquare2x2(t [2][2]int, alpha float64) (stat, critical float64) {
	n := float64(t[0][0] + t[0][1] + t[1][0] + t[1][1])
	for i := range 2 {
		for j := range 2 {
			row := float64(t[i][0] + t[i][1])
			col := float64(t[0][j] + t[1][j])
			exp := row * col / n
			if exp == 0 {
				continue
			}
			d := float64(t[i][j]) - exp
			stat += d * d / exp
		}
	}
	return stat, distuv.ChiSquared{K: 1}.Quantile(1 - alpha)
}

// TestRampMonotone is a property test over random ramps of random A/B/n
// allocations: raising shares never moves a unit off a candidate, every
// move goes base → the raised candidate, and exactly the units in the
// added bucket ranges move. Lowering is the same change reversed.
func TestRampMonotone(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	units := randomUnits(5, 2000)
	for trial := range 200 {
		n := 1 + r.IntN(4)
		max := int(experiments.MaxShare(n))
		lo := make([]uint16, n)
		hi := make([]uint16, n)
		for i := range n {
			p := r.IntN(max + 1)
			q := p
			if r.IntN(2) == 0 || i == 0 {
				q = p + r.IntN(max-p+1) // raise some candidates (always the first)
			}
			lo[i], hi[i] = uint16(p), uint16(q)
		}
		salt := fmt.Sprintf("ramp-%d", trial)
		cov := uint16(r.IntN(experiments.Buckets + 1))
		a := &experiments.Allocation{Salt: salt, CoverageBP: cov, Shares: lo, Serve: -1}
		b := &experiments.Allocation{Salt: salt, CoverageBP: cov, Shares: hi, Serve: -1}
		if experiments.Reshuffles(a, b) || experiments.Reshuffles(b, a) {
			t.Fatalf("trial %d: a share change reports Reshuffles", trial)
		}
		moved := 0
		mustMove := 0
		for _, u := range units {
			va, vb := experiments.Assign(a, u), experiments.Assign(b, u)
			if va.Variant != 0 && vb.Variant != va.Variant {
				t.Fatalf("trial %d: %q left candidate %d for %d when shares rose %v → %v", trial, u, va.Variant, vb.Variant, lo, hi)
			}
			if va.Variant != vb.Variant {
				moved++
				if va.Variant != 0 || hi[vb.Variant-1] == lo[vb.Variant-1] {
					t.Fatalf("trial %d: %q moved %d → %d; only base → a raised candidate may move", trial, u, va.Variant, vb.Variant)
				}
			}
			// Units that must move: analysed, and the variant bucket lies
			// in a candidate's added range [anchor+p, anchor+q).
			if va.Analysed() {
				slot := int(experiments.MaxShare(n))
				i := int(va.Bucket) / slot
				if i < n {
					off := int(va.Bucket) - int(experiments.Anchor(i+1, n))
					if off >= int(lo[i]) && off < int(hi[i]) {
						mustMove++
					}
				}
			}
		}
		if moved != mustMove {
			t.Fatalf("trial %d: %d units moved, %d had to", trial, moved, mustMove)
		}
	}
}

// TestCoverageRampMonotone: raising coverage (or lowering holdout) keeps
// every analysed unit on its variant.
func TestCoverageRampMonotone(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(6, 6))
	units := randomUnits(7, 2000)
	for trial := range 60 {
		c1 := uint16(r.IntN(experiments.Buckets + 1))
		c2 := c1 + uint16(r.IntN(experiments.Buckets-int(c1)+1))
		h2 := uint16(r.IntN(experiments.Buckets + 1))
		h1 := h2 + uint16(r.IntN(experiments.Buckets-int(h2)+1))
		shares := []uint16{uint16(r.IntN(5001)), uint16(r.IntN(5001))}
		salt := fmt.Sprintf("cov-%d", trial)
		a := &experiments.Allocation{Salt: salt, CoverageBP: c1, HoldoutBP: h1, Shares: shares, Serve: -1}
		b := &experiments.Allocation{Salt: salt, CoverageBP: c2, HoldoutBP: h2, Shares: shares, Serve: -1}
		if experiments.Reshuffles(a, b) {
			t.Fatalf("trial %d: widening coverage %d→%d / holdout %d→%d reports Reshuffles", trial, c1, c2, h1, h2)
		}
		for _, u := range units {
			va, vb := experiments.Assign(a, u), experiments.Assign(b, u)
			if va.Analysed() && (vb != va) {
				t.Fatalf("trial %d: analysed %q changed %+v → %+v when coverage widened", trial, u, va, vb)
			}
		}
	}
}

func TestReshuffles(t *testing.T) {
	t.Parallel()
	base := experiments.Allocation{Salt: "s", CoverageBP: 5000, HoldoutBP: 500, Shares: []uint16{1000, 1000}, Serve: -1}
	tests := []struct {
		name   string
		mutate func(a *experiments.Allocation)
		want   bool
	}{
		{"same", func(a *experiments.Allocation) {}, false},
		{"raise share", func(a *experiments.Allocation) { a.Shares = []uint16{3000, 1000} }, false},
		{"lower share", func(a *experiments.Allocation) { a.Shares = []uint16{0, 1000} }, false},
		{"raise coverage", func(a *experiments.Allocation) { a.CoverageBP = 10000 }, false},
		{"lower holdout", func(a *experiments.Allocation) { a.HoldoutBP = 0 }, false},
		{"serve", func(a *experiments.Allocation) { a.Serve = 1 }, false},
		{"add candidate", func(a *experiments.Allocation) { a.Shares = []uint16{1000, 1000, 0} }, true},
		{"drop candidate", func(a *experiments.Allocation) { a.Shares = []uint16{1000} }, true},
		{"new salt", func(a *experiments.Allocation) { a.Salt = "t" }, true},
		{"new phase", func(a *experiments.Allocation) { a.Salt = experiments.PhaseSalt("s", 2) }, true},
		{"lower coverage", func(a *experiments.Allocation) { a.CoverageBP = 4999 }, true},
		{"raise holdout", func(a *experiments.Allocation) { a.HoldoutBP = 501 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := base
			b.Shares = append([]uint16(nil), base.Shares...)
			tc.mutate(&b)
			if got := experiments.Reshuffles(&base, &b); got != tc.want {
				t.Errorf("Reshuffles = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReshuffleMoves: a candidate-count change does move analysed units
// off candidates (which is why it needs a new phase).
func TestReshuffleMoves(t *testing.T) {
	t.Parallel()
	// Candidate 2's anchor moves from 5000 to 3333 when a third arrives.
	a := &experiments.Allocation{Salt: "s", CoverageBP: experiments.Buckets, Shares: []uint16{1000, 3000}, Serve: -1}
	b := &experiments.Allocation{Salt: "s", CoverageBP: experiments.Buckets, Shares: []uint16{1000, 3000, 0}, Serve: -1}
	left := 0
	for _, u := range randomUnits(8, 10000) {
		if experiments.Assign(a, u).Variant == 2 && experiments.Assign(b, u).Variant != 2 {
			left++
		}
	}
	if left == 0 {
		t.Error("adding a candidate moved nobody; the anchors should move")
	}
}

func TestPhaseSalt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		salt  string
		phase int
		want  string
	}{{"exp", 0, "exp"}, {"exp", 1, "exp"}, {"exp", 2, "exp#2"}, {"exp", 17, "exp#17"}} {
		if got := experiments.PhaseSalt(tc.salt, tc.phase); got != tc.want {
			t.Errorf("PhaseSalt(%q, %d) = %q, want %q", tc.salt, tc.phase, got, tc.want)
		}
	}
}

// TestAllocationFromConfig: weights in percent become basis points.
func TestAllocationFromConfig(t *testing.T) {
	t.Parallel()
	cov := 12.34
	e := &experiments.Experiment{
		ID: "e", Phase: 3, Coverage: &cov, Holdout: 0.01,
		Variants: []experiments.Variant{{Name: "b", Allowlist: []string{"x"}}, {Name: "c1", Weight: 33.33}, {Name: "c2", Weight: 0.07, Allowlist: []string{"y"}}},
	}
	a := e.Allocation()
	if a.Salt != "e#3" || a.CoverageBP != 1234 || a.HoldoutBP != 1 || a.Serve != -1 ||
		len(a.Shares) != 2 || a.Shares[0] != 3333 || a.Shares[1] != 7 || a.Allowlist["x"] != 0 || a.Allowlist["y"] != 2 {
		t.Errorf("Allocation() = %+v", *a)
	}
}

func TestAssignZeroAllocs(t *testing.T) {
	if raceBuild {
		t.Skip("sync.Pool drops items under -race; run without -race to check allocations")
	}
	a := &experiments.Allocation{Salt: "checkout-ft-2026-11", CoverageBP: 9000, HoldoutBP: 100, Shares: []uint16{2500, 2500}, Serve: -1}
	for _, unit := range []string{"u-42", strings.Repeat("x", 200)} {
		if n := testing.AllocsPerRun(1000, func() { experiments.Assign(a, unit) }); n != 0 {
			t.Errorf("Assign with a %d-byte id allocates %.1f times, want 0", len(unit), n)
		}
	}
}

func BenchmarkAssign(b *testing.B) {
	a := &experiments.Allocation{Salt: "checkout-ft-2026-11", CoverageBP: 9000, HoldoutBP: 100, Shares: []uint16{2500, 2500}, Serve: -1}
	for _, bc := range []struct {
		name string
		unit string
	}{
		{"short", "u-1234567"},
		{"long", "5f0c3a2e-8d7b-4b1e-9c6a-2f4d8e1a7b3c:tenant-00042:user@example.com"},
		{"oversize", strings.Repeat("x", 300)}, // past the stack buffer: allocates
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				experiments.Assign(a, bc.unit)
			}
		})
	}
}

func FuzzAssign(f *testing.F) {
	f.Add("exp", "user-1", uint8(1), uint16(5000), uint16(0), uint16(0), uint16(10000), uint16(0))
	f.Add("exp#2", "", uint8(2), uint16(3333), uint16(3333), uint16(0), uint16(5000), uint16(1000))
	f.Add("", "Zoë", uint8(3), uint16(100), uint16(0), uint16(3333), uint16(10000), uint16(10000))
	f.Add("s", strings.Repeat("u", 300), uint8(0), uint16(0), uint16(0), uint16(0), uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, salt, unit string, n uint8, s1, s2, s3, cov, hold uint16) {
		n %= 4
		shares := []uint16{s1, s2, s3}[:n]
		for i := range shares {
			shares[i] %= experiments.MaxShare(int(n)) + 1
		}
		a := &experiments.Allocation{Salt: salt, Shares: shares, CoverageBP: cov % (experiments.Buckets + 1), HoldoutBP: hold % (experiments.Buckets + 1), Serve: -1}
		got := experiments.Assign(a, unit)
		if got != experiments.Assign(a, unit) {
			t.Fatal("not deterministic")
		}
		if got.Bucket >= experiments.Buckets {
			t.Fatalf("bucket %d out of range", got.Bucket)
		}
		if got.Variant < 0 || got.Variant > int(n) {
			t.Fatalf("variant %d out of range for %d candidates", got.Variant, n)
		}
		for _, suffix := range []string{"", "/coverage", "/holdout"} {
			ref := uint16(refMurmur3([]byte(salt+suffix+":"+unit), 0) % experiments.Buckets)
			if b := experiments.Bucket(salt, suffix, unit); b != ref {
				t.Fatalf("Bucket(%q, %q, %q) = %d, reference %d", salt, suffix, unit, b, ref)
			}
		}
		switch got.Reason {
		case experiments.ReasonNoUnit:
			if unit != "" || got.Variant != 0 {
				t.Fatalf("no_unit for %q → %d", unit, got.Variant)
			}
		case experiments.ReasonNotCovered, experiments.ReasonHoldout:
			if got.Variant != 0 {
				t.Fatalf("%v on variant %d", got.Reason, got.Variant)
			}
		case experiments.ReasonHashed:
			if got.Bucket != experiments.Bucket(salt, "", unit) {
				t.Fatal("hashed bucket is not the variant bucket")
			}
			if got.Variant > 0 {
				anchor := experiments.Anchor(got.Variant, int(n))
				if got.Bucket < anchor || got.Bucket >= anchor+shares[got.Variant-1] {
					t.Fatalf("bucket %d outside candidate %d's range [%d, %d)", got.Bucket, got.Variant, anchor, anchor+shares[got.Variant-1])
				}
			}
		default:
			t.Fatalf("unexpected reason %v", got.Reason)
		}
	})
}
