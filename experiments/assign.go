package experiments

import (
	"hash"
	"strconv"
	"sync"

	"github.com/spaolacci/murmur3"
)

// Buckets is the size of the hash space a unit is mapped into: 10,000
// buckets give 0.01% resolution, so a 0.1% canary is 10 buckets.
const Buckets = 10000

// HashVersion1 is murmur3 32-bit of salt + ":" + unit id, mod Buckets.
// It is the only version today; a spec stores its version so the
// algorithm can change later without reshuffling live experiments
// (GrowthBook's hash versions do the same).
const HashVersion1 = 1

// Reason says why a unit got its variant. Only ReasonHashed units enter
// the analysis: everyone else was not randomized.
type Reason uint8

const (
	// ReasonHashed: the unit was randomized by the variant hash.
	ReasonHashed Reason = iota
	// ReasonNoUnit: the request carried no unit id; it goes to the base.
	ReasonNoUnit
	// ReasonAllowlist: the unit is on a variant's QA allowlist.
	ReasonAllowlist
	// ReasonNotCovered: the unit fell outside the traffic coverage.
	ReasonNotCovered
	// ReasonHoldout: the unit is in the long-term holdout (always base).
	ReasonHoldout
	// ReasonServe: the allocation serves one variant to everyone
	// (promoted, rolled back or stopped).
	ReasonServe
)

var reasonNames = [...]string{"hashed", "no_unit", "allowlist", "not_covered", "holdout", "serve"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Allocation is everything Assign needs: the effective salts and the
// shares, in basis points of Buckets. It is a value the hot path reads
// from an immutable snapshot; building one is the snapshot's job.
//
// Variant 0 is always the base. Candidate i (1-based) owns the anchored
// range [Anchor(i), Anchor(i)+Shares[i-1]) of the variant hash, so raising
// its share from p to q keeps every unit already on it (monotone ramp) and
// lowering it moves only the units it must. Every other bucket is the base.
type Allocation struct {
	// Salt is the variant-decision salt, already including the phase
	// (see PhaseSalt). Coverage and holdout derive their own salts from it.
	Salt string
	// CoverageBP is the share of units that enter the experiment at all
	// (0..Buckets). Units outside get the base and are not analysed.
	CoverageBP uint16
	// HoldoutBP is the share of covered units held out on the base and not
	// analysed, for long-term comparison.
	HoldoutBP uint16
	// Shares holds each candidate's share of the variant hash in basis
	// points; len(Shares) is the number of candidates. Each share is at
	// most MaxShare(len(Shares)).
	Shares []uint16
	// Allowlist forces listed unit ids onto a variant (QA). Forced units
	// are not analysed. Checked before any hash.
	Allowlist map[string]int
	// Serve, when >= 0, sends every unit to that variant (promotion,
	// rollback, stop). -1 means split by the hash.
	Serve int
	// Shadow: the experiment is in its shadow stage (StatusShadow): the
	// gateway replays a sample of the base's requests to the candidates
	// for the judge. Serve is 0.
	Shadow bool
	// Period is the data period outcomes and tokens are recorded under
	// (Outcome.Phase, Token.Phase). It changes whenever the split changes
	// (a ramp step, a new phase), so data of different splits is never
	// pooled; the salt does not change with it, so ramps stay monotone.
	Period int
}

// Split is the expected share of each of n variants among the units the
// variant hash assigns, in basis points: each candidate's share and the
// rest for the base. It ignores Serve: it is the split the data of a
// period was gathered under (sample-ratio checks, reports).
func (a *Allocation) Split(n int) []float64 {
	split := make([]float64, n)
	rest := float64(Buckets)
	for i, sh := range a.Shares {
		if i+1 < n {
			split[i+1] = float64(sh)
			rest -= float64(sh)
		}
	}
	split[0] = rest
	return split
}

// Assignment is the result of Assign.
type Assignment struct {
	Variant int    // index into the experiment's variants; 0 is the base
	Bucket  uint16 // the variant-hash bucket, 0..Buckets-1 (0 unless hashed)
	Reason  Reason
}

// Analysed reports whether the unit was randomized and so belongs in
// the experiment's statistics.
func (a Assignment) Analysed() bool { return a.Reason == ReasonHashed }

// MaxShare is the largest share one of n candidates can have: the hash
// space is cut into n equal anchored slots so candidates never overlap.
func MaxShare(n int) uint16 {
	if n <= 0 {
		return 0
	}
	return uint16(Buckets / n)
}

// Anchor is the fixed first bucket of candidate i (1-based) among n.
func Anchor(i, n int) uint16 { return uint16((i - 1) * (Buckets / n)) }

// Assign maps a unit to a variant. It is a pure function of its
// arguments, so every replica (and any offline job) agrees. The order is
// fixed and documented in docs/config.md:
//
//  1. Serve >= 0: everyone gets that variant.
//  2. No unit id: the base.
//  3. Allowlist: the listed variant.
//  4. Coverage hash (salt + "/coverage"): outside the coverage, the base.
//  5. Holdout hash (salt + "/holdout"): inside the holdout, the base.
//  6. Variant hash (salt): the candidate whose anchored range holds the
//     bucket, else the base.
//
// Each decision hashes with its own salt, because reusing one hash for
// two decisions correlates them.
func Assign(a *Allocation, unit string) Assignment {
	if a.Serve >= 0 {
		return Assignment{Variant: a.Serve, Reason: ReasonServe}
	}
	if unit == "" {
		return Assignment{Reason: ReasonNoUnit}
	}
	if v, ok := a.Allowlist[unit]; ok {
		return Assignment{Variant: v, Reason: ReasonAllowlist}
	}
	if a.CoverageBP < Buckets && Bucket(a.Salt, "/coverage", unit) >= a.CoverageBP {
		return Assignment{Reason: ReasonNotCovered}
	}
	if a.HoldoutBP > 0 && Bucket(a.Salt, "/holdout", unit) < a.HoldoutBP {
		return Assignment{Reason: ReasonHoldout}
	}
	b := Bucket(a.Salt, "", unit)
	n := len(a.Shares)
	if n > 0 {
		slot := Buckets / n
		i := int(b) / slot // the candidate slot this bucket falls in
		if i < n && int(b)-i*slot < int(a.Shares[i]) {
			return Assignment{Variant: i + 1, Bucket: b, Reason: ReasonHashed}
		}
	}
	return Assignment{Bucket: b, Reason: ReasonHashed}
}

// Bucket is murmur3-32(salt + suffix + ":" + unit) mod Buckets, the
// standard MurmurHash3_x86_32 with seed 0, from spaolacci/murmur3.
//
// It uses the package's streaming digest, not its one-shot Sum32: Sum32
// walks the input with uintptr arithmetic that the race detector's
// checkptr mode rejects ("pointer arithmetic result points to invalid
// allocation", spaolacci/murmur3 issue #29), and every test here runs
// with -race. The digest indexes the slice and passes. Digest and key
// buffer are pooled, so hashing allocates nothing.
func Bucket(salt, suffix, unit string) uint16 {
	bh := hasherPool.Get().(*bucketHasher)
	key := append(bh.key[:0], salt...)
	key = append(key, suffix...)
	key = append(key, ':')
	key = append(key, unit...)
	bh.h.Reset()
	bh.h.Write(key)
	sum := bh.h.Sum32()
	if cap(key) <= maxPooledKey {
		bh.key = key
	}
	hasherPool.Put(bh)
	return uint16(sum % Buckets)
}

// maxPooledKey keeps an occasional huge id from pinning a large buffer in
// the pool.
const maxPooledKey = 1024

type bucketHasher struct {
	h   hash.Hash32
	key []byte
}

var hasherPool = sync.Pool{New: func() any {
	return &bucketHasher{h: murmur3.New32(), key: make([]byte, 0, 256)}
}}

// PhaseSalt is the effective variant salt of a phase. Phase 1 uses the
// salt itself, so an experiment that never changes phase hashes exactly
// as "murmur3(salt:unit)"; later phases append "#<phase>" and reshuffle.
func PhaseSalt(salt string, phase int) string {
	if phase <= 1 {
		return salt
	}
	return salt + "#" + strconv.Itoa(phase)
}

// Reshuffles reports whether moving from allocation a to b would move
// units between variants in a way a monotone ramp cannot: a different
// number of candidates (the anchors move), a different salt, or a lower
// coverage or higher holdout (units that were analysed would leave and
// could come back under another split). Such a change needs a new phase.
func Reshuffles(a, b *Allocation) bool {
	if a.Salt != b.Salt || len(a.Shares) != len(b.Shares) {
		return true
	}
	return b.CoverageBP < a.CoverageBP || b.HoldoutBP > a.HoldoutBP
}
