// Package redisstore is the Redis experiments.Store: per-user sufficient
// statistics kept by Lua scripts, so replicas of the gateway can record
// into one Redis (or Redis Cluster) without losing or double-counting. It
// is the only package that imports go-redis. docs/recording.md describes
// the key scheme and the scripts' contracts.
package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/yield"
)

var (
	_ experiments.Store       = (*Store)(nil)
	_ experiments.DriftReader = (*Store)(nil)

	_ experiments.ExposureReader = (*Store)(nil)
	_ experiments.FeedbackLog    = (*Store)(nil)
)

// Defaults.
const (
	// DefaultChunkEntries bounds the metric entries one script call
	// applies, so a call blocks Redis for a few milliseconds at most.
	DefaultChunkEntries = 4096
	// DefaultDedupWindow is how long a batch id is remembered: a batch
	// retried later than this after a lost reply would be applied twice.
	// The recorder gives up on batches long before (see
	// recorder.DefaultMaxBatchAge).
	DefaultDedupWindow = time.Hour
)

// Store is an experiments.Store in Redis. It is safe for concurrent use.
type Store struct {
	c            redis.UniversalClient
	k            keys
	chunkEntries int
	dedupWindow  time.Duration
	log          *slog.Logger
	logKeep      time.Duration // feedback records without text
	logMax       int64
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the key prefix (default "abgate").
func WithPrefix(p string) Option {
	return func(s *Store) {
		if p != "" {
			s.k.prefix = p
		}
	}
}

// WithChunkEntries sets the most metric entries one script call applies.
func WithChunkEntries(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.chunkEntries = n
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// New returns a Store using c, which may be a single-node client or a
// ClusterClient.
func New(c redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		c:            c,
		k:            keys{prefix: DefaultPrefix},
		chunkEntries: DefaultChunkEntries,
		dedupWindow:  DefaultDedupWindow,
		log:          slog.Default(),
		logKeep:      experiments.DefaultFeedbackLogRetention,
		logMax:       experiments.DefaultFeedbackLogMax,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// group is one user of one variant within a batch.
type group struct {
	variant int
	unit    experiments.UnitKey
	entries []entry
}

// entry is a Delta of a batch, with the event id if it came from Events.
type entry struct {
	d  *experiments.Delta
	id string
	// group and cap: a capped event (experiments.Event.Cap).
	group string
	cap   int
	// metric indexes the batch's metric names (names.list): d.Metric, or
	// for a segment copy of d its segment metric
	// (experiments.SegmentMetric). A copy's id is sameAsPrevious when d
	// is an event, so the script applies it exactly when it applied d.
	metric int32
}

// sameAsPrevious is the event id of a segment copy of an event entry: the
// script applies it if and only if it applied the entry before it.
const sameAsPrevious = "="

// noEventID marks, while encoding, a capped event without an id (sent to
// the script as ""), so its segment copies get sameAsPrevious.
const noEventID = "\x00"

// names interns a batch's metric names, segment copies' included, so
// that each is hashed once per delta and built once per batch, not once
// per entry: a batch of 200 users with one segment dimension built 1,600
// segment names and looked each of its 3,200 names up twice by string
// (BenchmarkEncode: 1.19 ms and 3,462 allocations per such batch before,
// 0.42 ms and 73 with the names interned and the groups' entries in one
// array).
type names struct {
	base map[string]int32 // a delta's own metric
	seg  map[uint64]int32 // a copy: its metric's index, dimension, value
	list []string
}

func (n *names) metric(m string) int32 {
	i, ok := n.base[m]
	if !ok {
		i = int32(len(n.list))
		n.list = append(n.list, m)
		n.base[m] = i
	}
	return i
}

func (n *names) segment(metric int32, dim, value int) int32 {
	k := uint64(metric)<<16 | uint64(dim)<<8 | uint64(value)
	i, ok := n.seg[k]
	if !ok {
		i = int32(len(n.list))
		n.list = append(n.list, experiments.SegmentMetric(n.list[metric], dim, value))
		n.seg[k] = i
	}
	return i
}

// withSegments appends e and its segment copies to es.
func withSegments(es []entry, e entry, ns *names) []entry {
	e.metric = ns.metric(e.d.Metric)
	es = append(es, e)
	id := ""
	if e.id != "" {
		id = sameAsPrevious
	}
	for i := range e.d.Segments.Len() {
		es = append(es, entry{d: e.d, id: id, metric: ns.segment(e.metric, i, int(e.d.Segments.V[i]))})
	}
	return es
}

// entriesOf is how many entries d makes: itself and a copy per segment
// dimension.
func entriesOf(d *experiments.Delta) int {
	return 1 + d.Segments.Len()
}

// Apply implements experiments.Store. The batch is cut into chunks of at
// most chunkEntries entries (a user's entries never straddle chunks);
// the chunks go out in one pipeline of EVALSHA, each applied atomically
// and at most once (a marker set per batch), so retrying the whole batch
// after any error is safe.
func (s *Store) Apply(ctx context.Context, b *experiments.Batch) (experiments.ApplyResult, error) {
	var res experiments.ApplyResult
	if err := b.Validate(); err != nil {
		return res, err
	}
	chunks := s.encode(b)
	results, err := s.runChunks(ctx, chunks)
	if err != nil {
		return res, fmt.Errorf("apply batch %s of %q: %w", b.ID, b.Experiment, err)
	}
	if err := s.logRecords(ctx, b); err != nil {
		return res, fmt.Errorf("apply batch %s of %q: %w", b.ID, b.Experiment, err)
	}
	res.Duplicate = true
	for _, r := range results {
		if r[0] == 1 {
			res.Duplicate = false
		}
		res.DuplicateEvents += int(r[1])
	}
	return res, nil
}

type chunk struct {
	keys []string
	args []any
}

// encode groups a batch by user and cuts it into script calls. The result
// depends only on the batch, so a retry produces the same chunks.
func (s *Store) encode(b *experiments.Batch) []chunk {
	// Encoding a 100 ms interval's batch at 2,000 requests/s ran for
	// about 1.3 ms (0.4 ms since names), which a gateway on one core
	// (GOMAXPROCS=1) spends serving nobody (bench/slices on the load
	// harness's tail scenario, issue "Live streams at scale"): ys pauses
	// for the requests every yield.Slice of work.
	var ys yield.Slicer
	type gk struct {
		variant int
		unit    experiments.UnitKey
	}
	// Two passes: the first finds each delta's group and counts the
	// group's entries, so that every group's entries are a slice of one
	// array, sized once; the second fills them.
	n := len(b.Deltas) + len(b.Events)
	idx := make(map[gk]int32, n/4)
	var groups []group
	var sizes []int
	of := make([]int32, n) // group of each delta, then of each event
	count := func(i int, d *experiments.Delta) {
		k := gk{d.Variant, d.Unit}
		g, ok := idx[k]
		if !ok {
			g = int32(len(groups))
			idx[k] = g
			groups = append(groups, group{variant: d.Variant, unit: d.Unit})
			sizes = append(sizes, 0)
		}
		of[i] = g
		sizes[g] += entriesOf(d)
	}
	for i := range b.Deltas {
		count(i, &b.Deltas[i])
	}
	for i := range b.Events {
		count(len(b.Deltas)+i, &b.Events[i].Delta)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	all := make([]entry, total)
	off := 0
	for g, n := range sizes {
		groups[g].entries = all[off : off : off+n]
		off += n
	}
	ns := names{base: make(map[string]int32), seg: make(map[uint64]int32)}
	for i := range b.Deltas {
		g := &groups[of[i]]
		g.entries = withSegments(g.entries, entry{d: &b.Deltas[i]}, &ns)
		ys.Tick()
	}
	for i := range b.Events {
		e := &b.Events[i]
		g := &groups[of[len(b.Deltas)+i]]
		id := e.ID
		if id == "" {
			// A capped event without an id is still an event: its
			// segment copies follow it ("=").
			id = noEventID
		}
		g.entries = withSegments(g.entries, entry{d: &e.Delta, id: id, group: e.Group, cap: e.Cap}, &ns)
		ys.Tick()
	}
	byHour := func(a, b entry) int { return cmp.Compare(a.d.Hour, b.d.Hour) }
	for i := range groups {
		// A user's entries go in hour order, so each hourly bucket gets
		// the change that happened during that hour.
		if es := groups[i].entries; !slices.IsSortedFunc(es, byHour) {
			slices.SortStableFunc(es, byHour)
		}
		ys.Tick()
	}
	slices.SortFunc(groups, func(a, b group) int {
		if c := cmp.Compare(a.variant, b.variant); c != 0 {
			return c
		}
		return bytes.Compare(a.unit[:], b.unit[:])
	})

	var chunks []chunk
	start, entries := 0, 0
	for i, g := range groups {
		entries += len(g.entries)
		if entries >= s.chunkEntries || i == len(groups)-1 {
			chunks = append(chunks, s.encodeChunk(b, len(chunks), groups[start:i+1], &ns, &ys))
			start, entries = i+1, 0
		}
	}
	if len(chunks) == 0 { // counters only
		chunks = append(chunks, s.encodeChunk(b, 0, nil, &ns, &ys))
	}
	if c := b.Covariates; c != nil && len(b.History) > 0 {
		last := chunks[len(chunks)-1].args
		last[8] = historyArg(c, b.History) // ARGV[9]
	}
	return chunks
}

func (s *Store) encodeChunk(b *experiments.Batch, n int, groups []group, ns *names, ys *yield.Slicer) chunk {
	// Slots: variants, hours and metric names used by this chunk, in
	// order of first use. A metric's slot is indexed by its name's index
	// in ns: no string is hashed here.
	vslot := map[int]int{}
	var vids []int
	hslot := map[experiments.Hour]int{}
	var hids []experiments.Hour
	mslot := make([]int32, len(ns.list))
	var mnames []string
	useV := func(v int) int {
		if s, ok := vslot[v]; ok {
			return s
		}
		vids = append(vids, v)
		vslot[v] = len(vids)
		return len(vids)
	}
	useH := func(h experiments.Hour) int {
		if s, ok := hslot[h]; ok {
			return s
		}
		hids = append(hids, h)
		hslot[h] = len(hids)
		return len(hids)
	}
	useM := func(m int32) {
		if mslot[m] == 0 {
			mnames = append(mnames, ns.list[m])
			mslot[m] = int32(len(mnames))
		}
	}
	counters, hist := b.Counters, b.Hist
	if n > 0 {
		counters, hist = nil, nil // counters and drift go with the first chunk
	}
	dslot := map[experiments.Hour]int{}
	var dids []experiments.Hour
	for _, h := range hist {
		if _, ok := dslot[h.Hour]; !ok {
			dids = append(dids, h.Hour)
			dslot[h.Hour] = len(dids)
		}
	}
	for _, c := range counters {
		useV(c.Variant)
	}
	entries := 0
	for i := range groups {
		g := &groups[i]
		useV(g.variant)
		for j := range g.entries {
			e := &g.entries[j]
			useH(e.d.Hour)
			useM(e.metric)
		}
		entries += len(g.entries)
		ys.Tick()
	}

	var p packer
	p.b = make([]byte, 0, 64+16*len(mnames)+len(groups)*40+entries*16)
	top := p.arrayHeader()
	p.int(int64(len(vids)))
	for _, v := range vids {
		p.int(int64(v))
	}
	p.int(int64(len(hids)))
	for _, h := range hids {
		p.int(int64(h))
	}
	p.int(int64(len(mnames)))
	for _, m := range mnames {
		p.str(m)
	}
	p.int(int64(len(counters)))
	for _, c := range counters {
		p.int(int64(vslot[c.Variant]))
		p.str(c.Name)
		p.int(c.N)
	}
	p.int(int64(len(dids)))
	for _, h := range dids {
		p.int(int64(h))
	}
	p.int(int64(len(hist)))
	for _, h := range hist {
		p.int(int64(dslot[h.Hour]))
		p.str(strconv.Itoa(h.Variant) + ":" + h.Feature + ":" + strconv.Itoa(h.Bin))
		p.int(h.N)
	}
	p.int(int64(len(groups)))
	var hexbuf [2 * len(experiments.UnitKey{})]byte
	for i := range groups {
		g := &groups[i]
		ys.Tick()
		p.int(int64(vslot[g.variant]))
		hex.Encode(hexbuf[:], g.unit[:])
		p.bytes(hexbuf[:])
		p.int(int64(len(g.entries)))
		for j := range g.entries {
			e := &g.entries[j]
			p.int(int64(mslot[e.metric]))
			p.float(e.d.DX)
			p.float(e.d.DY)
			p.int(int64(hslot[e.d.Hour]))
			id := e.id
			if id == noEventID {
				id = ""
			}
			p.str(id)
			p.str(e.group)
			p.int(int64(e.cap))
		}
	}
	p.setArray(top, p.n)

	id, ph := b.Experiment, b.Phase
	ks := make([]string, 0, 7+2*len(vids)+len(hids))
	ks = append(ks,
		s.k.keySet(id), s.k.events(id), s.k.metricDict(id), s.k.batch(id, b.ID),
		s.k.variants(id, ph), s.k.hours(id, ph), s.k.counters(id, ph))
	for _, v := range vids {
		ks = append(ks, s.k.stats(id, ph, v), s.k.users(id, ph, v))
	}
	for _, h := range hids {
		ks = append(ks, s.k.hour(id, ph, h))
	}
	ks = append(ks, s.k.driftHours(id))
	for _, h := range dids {
		ks = append(ks, s.k.drift(id, h))
	}
	ks = append(ks, s.k.groups(id))
	args := []any{n, s.dedupWindow.Milliseconds(), p.b}
	if c := b.Covariates; c != nil {
		ks = append(ks, s.k.covPhase(id))
		mode := "1"
		if len(c.Metrics) == 0 {
			mode = "2" // the first-exposure record only (ARGV[4])
		}
		args = append(args, mode, c.SaltPhase, c.HistoryTTL.Milliseconds(), s.k.exp(id), covariateTable(c, mnames), emptyHistory, ph)
	}
	if len(b.Joint) > 0 {
		if len(args) == 3 {
			// ARGV[4] to [10]: no covariates.
			args = append(args, "0", "", "", "", "", "", "")
		}
		args = append(args, encodeJoint(b.Joint))
	}
	return chunk{keys: ks, args: args}
}

// encodeJoint is the apply script's ARGV[11]: (human, judge, cut) per pair.
func encodeJoint(jps []experiments.JointPair) []byte {
	var p packer
	top := p.arrayHeader()
	for _, jp := range jps {
		p.str(jp.Human)
		p.str(jp.Judge)
		p.float(jp.Cut)
	}
	p.setArray(top, 3*len(jps))
	return p.b
}

// covariateTable is the apply script's ARGV[8]: per metric slot, the
// metric its history is kept under, its covariate source, z without
// history, and its bounds (experiments.MetricInfo.CovariateZ).
func covariateTable(c *experiments.Covariates, mnames []string) string {
	var p packer
	top := p.arrayHeader()
	for _, name := range mnames {
		m, ok := c.Info(name)
		if !ok {
			p.str("")
			p.int(0)
			p.int(0)
			p.int(0)
			p.int(0)
			continue
		}
		p.str(m.Name)
		p.int(int64(m.Covariate))
		p.float(m.MissingCovariate())
		p.float(m.Min)
		p.float(m.Max)
	}
	p.setArray(top, p.n)
	return string(p.b)
}

// emptyHistory is ARGV[9] of every chunk but the last: no history entries.
var emptyHistory = func() string {
	var p packer
	top := p.arrayHeader()
	p.int(0)
	p.setArray(top, p.n)
	return string(p.b)
}()

// historyArg is the last chunk's ARGV[9]: the batch's History entries of
// metrics the history keeps, merged per (unit, metric) by the recorder.
func historyArg(c *experiments.Covariates, hist []experiments.Delta) string {
	kept := func(d *experiments.Delta) bool { _, ok := c.Metrics[d.Metric]; return ok }
	k := 0
	for i := range hist {
		if kept(&hist[i]) {
			k++
		}
	}
	var p packer
	top := p.arrayHeader()
	p.int(int64(k))
	var hexbuf [2 * len(experiments.UnitKey{})]byte
	for i := range hist {
		d := &hist[i]
		if !kept(d) {
			continue
		}
		hex.Encode(hexbuf[:], d.Unit[:])
		p.str(string(hexbuf[:]))
		p.str(d.Metric)
		p.float(d.DX)
		p.float(d.DY)
	}
	p.setArray(top, p.n)
	return string(p.b)
}

// runChunks runs the chunks in one pipeline of EVALSHA. If Redis doesn't
// know the script (first use, restart, SCRIPT FLUSH) it loads it and runs
// the pipeline again: chunks that were applied are skipped by their
// markers.
func (s *Store) runChunks(ctx context.Context, chunks []chunk) ([][2]int64, error) {
	for attempt := 0; ; attempt++ {
		pipe := s.c.Pipeline()
		cmds := make([]*redis.Cmd, len(chunks))
		for i, c := range chunks {
			cmds[i] = applyScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && anyNoScript(cmds) {
			if lerr := applyScript.Load(ctx, s.c).Err(); lerr != nil {
				return nil, fmt.Errorf("load script: %w", lerr)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out := make([][2]int64, len(cmds))
		for i, c := range cmds {
			v, err := c.Int64Slice()
			if err != nil || len(v) != 2 {
				return nil, fmt.Errorf("apply script: unexpected reply %v: %w", c.Val(), err)
			}
			out[i] = [2]int64{v[0], v[1]}
		}
		return out, nil
	}
}

func anyNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Summaries implements experiments.Store.
func (s *Store) Summaries(ctx context.Context, exp string, phase int) (experiments.Snapshot, error) {
	snap := experiments.Snapshot{
		Stats:    make(map[experiments.VariantMetric]experiments.Summary),
		Counters: make(map[experiments.VariantMetric]int64),
		Segments: make(map[experiments.SegmentKey]experiments.Summary),
		Fresh:    make(map[experiments.VariantMetric]experiments.Summary),
		Joint:    make(map[experiments.JointKey]experiments.JointSummary),
	}
	var known []int
	for attempt := 0; attempt < 3; attempt++ {
		ks := []string{s.k.variants(exp, phase), s.k.counters(exp, phase)}
		for _, v := range known {
			ks = append(ks, s.k.stats(exp, phase, v))
		}
		reply, err := readScript.Run(ctx, s.c, ks).Slice()
		if err != nil {
			return snap, fmt.Errorf("read summaries of %q: %w", exp, translate(err))
		}
		vs, err := variantList(reply[0])
		if err != nil {
			return snap, err
		}
		if !sameInts(vs, known) {
			known = vs // a variant appeared (or first read): read again with its keys
			continue
		}
		counters, err := pairs(reply[1])
		if err != nil {
			return snap, err
		}
		for f, val := range counters {
			vstr, name, ok := strings.Cut(f, ":")
			v, err1 := strconv.Atoi(vstr)
			n, err2 := strconv.ParseInt(val, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return snap, fmt.Errorf("read summaries of %q: bad counter %q=%q", exp, f, val)
			}
			snap.Counters[experiments.VariantMetric{Variant: v, Metric: name}] = n
		}
		for i, v := range known {
			fields, err := pairs(reply[2+i])
			if err != nil {
				return snap, err
			}
			if err := addJoint(snap.Joint, v, fields); err != nil {
				return snap, fmt.Errorf("read summaries of %q: %w", exp, err)
			}
			if err := addStats(snap.Fresh, v, cutFresh(fields)); err != nil {
				return snap, fmt.Errorf("read summaries of %q: fresh: %w", exp, err)
			}
			if err := addStats(snap.Stats, v, fields); err != nil {
				return snap, fmt.Errorf("read summaries of %q: %w", exp, err)
			}
		}
		splitSegments(&snap)
		return snap, nil
	}
	return snap, fmt.Errorf("read summaries of %q: variants kept changing", exp)
}

// Hourly implements experiments.Store. Hours that overlap [from, to) are
// returned.
func (s *Store) Hourly(ctx context.Context, exp string, phase int, from, to time.Time) ([]experiments.HourSummaries, error) {
	hours, hashes, err := s.readHours(ctx, s.k.hours(exp, phase), func(h experiments.Hour) string { return s.k.hour(exp, phase, h) }, from, to)
	if err != nil {
		return nil, fmt.Errorf("read hourly stats of %q: %w", exp, err)
	}
	out := make([]experiments.HourSummaries, 0, len(hours))
	for i, fields := range hashes {
		hsum := experiments.HourSummaries{Hour: hours[i].Time(), Stats: make(map[experiments.VariantMetric]experiments.Summary)}
		byVariant := map[int]map[string]string{}
		for f, val := range fields {
			vstr, rest, ok := strings.Cut(f, ":")
			v, err := strconv.Atoi(vstr)
			if !ok || err != nil {
				return nil, fmt.Errorf("read hourly stats of %q: bad field %q", exp, f)
			}
			if byVariant[v] == nil {
				byVariant[v] = map[string]string{}
			}
			byVariant[v][rest] = val
		}
		for v, fields := range byVariant {
			for f := range fields {
				if experiments.IsSegmentMetric(f) {
					delete(fields, f)
				}
			}
			if err := addStats(hsum.Stats, v, fields); err != nil {
				return nil, fmt.Errorf("read hourly stats of %q: %w", exp, err)
			}
		}
		out = append(out, hsum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}

// Expire implements experiments.Store.
func (s *Store) Expire(ctx context.Context, exp string, after time.Duration) error {
	ms := after.Milliseconds()
	if after > 0 && ms == 0 {
		ms = 1
	}
	if err := expireScript.Run(ctx, s.c, []string{s.k.keySet(exp)}, ms).Err(); err != nil {
		return fmt.Errorf("expire %q: %w", exp, translate(err))
	}
	return nil
}

// splitSegments moves the statistics kept under segment metric names
// from snap.Stats to snap.Segments.
func splitSegments(snap *experiments.Snapshot) {
	for vm, sum := range snap.Stats {
		if m, dim, val, ok := experiments.ParseSegmentMetric(vm.Metric); ok {
			snap.Segments[experiments.SegmentKey{Variant: vm.Variant, Metric: m, Dimension: dim, Value: val}] = sum
			delete(snap.Stats, vm)
		}
	}
}

// jointPrefix begins the stats hash fields of the joint sums
// (experiments.Batch.Joint): "~j:<human>:<judge>:<stat>".
const jointPrefix = "~j:"

// addJoint moves the joint sums' fields out of fields into dst for
// variant v.
func addJoint(dst map[experiments.JointKey]experiments.JointSummary, v int, fields map[string]string) error {
	for f, val := range fields {
		rest, ok := strings.CutPrefix(f, jointPrefix)
		if !ok {
			continue
		}
		delete(fields, f)
		parts := strings.Split(rest, ":")
		x, err := strconv.ParseFloat(val, 64)
		if len(parts) != 3 || err != nil {
			return fmt.Errorf("bad joint field %q=%q", f, val)
		}
		k := experiments.JointKey{Variant: v, Human: parts[0], Judge: parts[1]}
		js := dst[k]
		p := &js.PPI
		ptr := map[string]*float64{
			"n": &p.Labeled, "sh": &p.SumHuman, "sh2": &p.SumHuman2, "sf": &p.SumJudge, "sf2": &p.SumJudge2,
			"shf": &p.SumHumanJudge, "un": &p.Unlabeled, "usf": &p.SumJudgeU, "usf2": &p.SumJudgeU2,
			"a00": &js.Agree[0][0], "a01": &js.Agree[0][1], "a10": &js.Agree[1][0], "a11": &js.Agree[1][1],
		}[parts[2]]
		if ptr == nil {
			return fmt.Errorf("bad joint field %q", f)
		}
		*ptr = x
		dst[k] = js
	}
	return nil
}

// freshPrefix begins the stats hash fields of the newly exposed cohort's
// sums (experiments.Snapshot.Fresh): "~f:<metric>:<stat>".
const freshPrefix = "~f:"

// cutFresh moves the fresh sums' fields out of fields and returns them
// without the prefix, for addStats.
func cutFresh(fields map[string]string) map[string]string {
	out := map[string]string{}
	for f, val := range fields {
		if rest, ok := strings.CutPrefix(f, freshPrefix); ok {
			delete(fields, f)
			out[rest] = val
		}
	}
	return out
}

// addStats parses "<metric>:<stat>" fields into dst for variant v.
func addStats(dst map[experiments.VariantMetric]experiments.Summary, v int, fields map[string]string) error {
	for f, val := range fields {
		i := strings.LastIndexByte(f, ':')
		if i < 0 {
			return fmt.Errorf("bad stats field %q", f)
		}
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("bad stats value %q=%q", f, val)
		}
		vm := experiments.VariantMetric{Variant: v, Metric: f[:i]}
		sum := dst[vm]
		switch f[i+1:] {
		case "n":
			sum.N = x
		case "sx":
			sum.SumX = x
		case "sx2":
			sum.SumX2 = x
		case "sy":
			sum.SumY = x
		case "sy2":
			sum.SumY2 = x
		case "sxy":
			sum.SumXY = x
		case "sr":
			sum.SumR = x
		case "sr2":
			sum.SumR2 = x
		case "sz":
			sum.SumZ = x
		case "sz2":
			sum.SumZ2 = x
		case "sxz":
			sum.SumXZ = x
		case "syz":
			sum.SumYZ = x
		case "srz":
			sum.SumRZ = x
		default:
			return fmt.Errorf("bad stats field %q", f)
		}
		dst[vm] = sum
	}
	return nil
}

func variantList(v any) ([]int, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("read summaries: unexpected variants reply %T", v)
	}
	out := make([]int, 0, len(items))
	for _, it := range items {
		s, _ := it.(string)
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("read summaries: bad variant %v", it)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

func pairs(v any) (map[string]string, error) {
	items, ok := v.([]any)
	if !ok || len(items)%2 != 0 {
		return nil, fmt.Errorf("read summaries: unexpected hash reply %T", v)
	}
	m := make(map[string]string, len(items)/2)
	for i := 0; i < len(items); i += 2 {
		k, _ := items[i].(string)
		val, _ := items[i+1].(string)
		m[k] = val
	}
	return m, nil
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// translate maps go-redis's "absent" to experiments.ErrNotFound; other
// errors pass through.
func translate(err error) error {
	if errors.Is(err, redis.Nil) {
		return experiments.ErrNotFound
	}
	return err
}

// readHours reads the hourly hashes kept for [from, to): the hours listed
// in the sorted set index (hour numbers as scores and members) and, in one
// pipeline, the hash hashKey(hour) of each. Hours that overlap the range
// count. Both the hourly statistics and the drift histograms use it.
func (s *Store) readHours(ctx context.Context, index string, hashKey func(experiments.Hour) string, from, to time.Time) ([]experiments.Hour, []map[string]string, error) {
	lo, hi := experiments.HourOf(from), experiments.HourOf(to)
	if !to.Equal(hi.Time()) {
		hi++
	}
	if hi <= lo {
		return nil, nil, nil
	}
	hs, err := s.c.ZRangeByScore(ctx, index, &redis.ZRangeBy{
		Min: strconv.FormatInt(int64(lo), 10),
		Max: strconv.FormatInt(int64(hi-1), 10),
	}).Result()
	if err != nil || len(hs) == 0 {
		return nil, nil, translate(err)
	}
	pipe := s.c.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(hs))
	hours := make([]experiments.Hour, len(hs))
	for i, h := range hs {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("bad hour %q", h)
		}
		hours[i] = experiments.Hour(n)
		cmds[i] = pipe.HGetAll(ctx, hashKey(hours[i]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, translate(err)
	}
	hashes := make([]map[string]string, len(cmds))
	for i, c := range cmds {
		hashes[i] = c.Val()
	}
	return hours, hashes, nil
}
