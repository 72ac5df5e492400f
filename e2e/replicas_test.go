package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/webhook"
)

// replica is one serve process: its own Redis client, lifecycle service,
// controller and allocation watcher.
type replica struct {
	name   string
	client *redis.Client
	lcs    *redisstore.Lifecycle
	lc     *rollout.Lifecycle
	ctl    *rollout.Controller
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	allocs []timedAlloc
}

type timedAlloc struct {
	at time.Time
	a  *experiments.Allocation
}

func (r *replica) setAllocation(_ string, a *experiments.Allocation) {
	r.mu.Lock()
	r.allocs = append(r.allocs, timedAlloc{time.Now(), a})
	r.mu.Unlock()
}

func (r *replica) lastAlloc() (*experiments.Allocation, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.allocs) == 0 {
		return nil, time.Time{}
	}
	l := r.allocs[len(r.allocs)-1]
	return l.a, l.at
}

func startReplica(t *testing.T, name, addr, prefix string, cfg *experiments.Config, stats rollout.SummaryReader, notifier rollout.Notifier, watchOpts ...rollout.Option) *replica {
	t.Helper()
	r := &replica{name: name, done: make(chan struct{})}
	r.client = redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { r.client.Close() })
	r.lcs = redisstore.NewLifecycle(r.client, prefix)
	var opts []rollout.Option
	if notifier != nil {
		opts = append(opts, rollout.WithNotifier(notifier))
	}
	r.lc = rollout.NewLifecycle(r.lcs, cfg, opts...)
	r.ctl = rollout.NewController(r.lc, stats, r.lcs, cfg.Controller,
		rollout.WithHolderID(name), rollout.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	w := rollout.NewWatcher(r.lcs, cfg, r.setAllocation, append([]rollout.Option{rollout.WithLogger(quiet)}, watchOpts...)...)
	go func() {
		defer close(r.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); r.ctl.Run(ctx) }()
		go func() { defer wg.Done(); w.Run(ctx) }()
		wg.Wait()
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// crash stops the replica without releasing its lease, as a killed
// process would.
func (r *replica) crash() {
	r.cancel()
	<-r.done
}

func waitUntil(t *testing.T, max time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > max {
			t.Fatalf("not within %v: %s", max, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// Two replicas share one redis-server. Only one leads; the leader is
// killed mid-rollout without releasing its lease; the other takes over
// within the lease TTL and finishes the rollout; its old fence can no
// longer write; no transition is applied twice; both replicas follow
// every allocation change within a second.
func TestTwoReplicasFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	t.Parallel()
	srv := storetest.StartRedis(t)
	const prefix = "e2e"
	const ttl = time.Second
	r := defaultRollout()
	r.Steps = nil
	for p := 5.0; p <= 50; p += 5 {
		r.Steps = append(r.Steps, experiments.RampStep{Percent: p, MinDuration: experiments.Duration(250 * time.Millisecond)})
	}
	r.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.05}, {Metric: experiments.MetricLatencyMS, Margin: 0.25, Relative: true}}
	r.MinUsers = 100
	e := scenarioExperiment("failover", r)
	cfg := &experiments.Config{
		Experiments: []experiments.Experiment{e},
		Controller:  experiments.Controller{Interval: experiments.Duration(100 * time.Millisecond), LeaseTTL: experiments.Duration(ttl)},
	}

	statsClient := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { statsClient.Close() })
	stats := redisstore.New(statsClient, redisstore.WithPrefix(prefix))

	// Both replicas send webhooks to one receiver; each sends only the
	// transitions it committed.
	hooks, hookURL := newReceiver(t, "shared-secret", 0)
	var whs []*webhook.Sender
	for range 2 {
		whs = append(whs, webhook.New([]experiments.Webhook{{URL: hookURL, Secret: "shared-secret"}},
			webhook.WithBackoff(10*time.Millisecond, 50*time.Millisecond), webhook.WithLogger(quiet)))
	}
	a := startReplica(t, "replica-a", srv.Addr, prefix, cfg, stats, whs[0])
	b := startReplica(t, "replica-b", srv.Addr, prefix, cfg, stats, whs[1])
	ctx := context.Background()

	// Exactly one leads.
	var leader, follower *replica
	waitUntil(t, 3*time.Second, "a leader", func() bool { return a.ctl.Fence() > 0 || b.ctl.Fence() > 0 })
	time.Sleep(ttl / 2) // let both renew/acquire a few times
	switch fa, fb := a.ctl.Fence(), b.ctl.Fence(); {
	case fa > 0 && fb == 0:
		leader, follower = a, b
	case fb > 0 && fa == 0:
		leader, follower = b, a
	default:
		t.Fatalf("fences a=%d b=%d: want exactly one leader", fa, fb)
	}
	oldFence := leader.ctl.Fence()

	// Synthetic traffic into the shared statistics, under whatever
	// allocation the follower's watcher last delivered.
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	pop := newPopulation(&e, []arm{baseArm, betterArm}, stats, time.Now, 42)
	trafficDone := make(chan error, 1)
	go func() {
		tk := time.NewTicker(40 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-tctx.Done():
				trafficDone <- nil
				return
			case <-tk.C:
				al, _ := follower.lastAlloc()
				if al == nil {
					continue
				}
				if err := pop.visit(tctx, al, 400); err != nil && tctx.Err() == nil {
					trafficDone <- err
					return
				}
			}
		}
	}()

	if _, err := leader.lc.Start(ctx, e.ID, "api:test", "failover test"); err != nil {
		t.Fatal(err)
	}
	// Let the leader advance twice, then kill it.
	waitUntil(t, 15*time.Second, "two advances by the first leader", func() bool {
		st, _ := follower.lc.State(ctx, e.ID)
		return st.Step >= 2
	})
	leader.crash()
	crashed := time.Now()
	took := waitUntil(t, 3*ttl, "the follower takes over", func() bool { return follower.ctl.Fence() > 0 })
	newFence := follower.ctl.Fence()
	t.Logf("%s took over %v after %s crashed (lease TTL %v); fences %d -> %d", follower.name, took, leader.name, ttl, oldFence, newFence)
	if newFence <= oldFence {
		t.Fatalf("new fence %d not above the old %d", newFence, oldFence)
	}

	// A paused old leader waking up with its old fence can't write.
	_, err := leader.lc.Do(ctx, experiments.Command{Experiment: e.ID, Action: experiments.ActionPause, Actor: experiments.ControllerActor, Fence: oldFence})
	if !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("old leader's write: %v, want ErrFenced", err)
	}

	// The new leader finishes the rollout.
	waitUntil(t, 30*time.Second, "promotion by the new leader", func() bool {
		st, _ := follower.lc.State(ctx, e.ID)
		return st.Status != experiments.StatusRunning
	})
	stopTraffic()
	if err := <-trafficDone; err != nil {
		t.Fatal(err)
	}
	st, _ := follower.lc.State(ctx, e.ID)
	hist, _ := follower.lc.History(ctx, e.ID, 0)
	if st.Status != experiments.StatusPromoted {
		t.Fatalf("final state %s, want promoted\n%s", st.Status, outcome{state: st, history: hist})
	}

	// No transition applied twice: one entry per version, steps advance
	// one at a time, fences never go back, and everything after the
	// crash was written under the new fence.
	var sawNew bool
	for i, tr := range hist {
		if tr.Seq != int64(i+1) {
			t.Errorf("history entry %d has seq %d", i, tr.Seq)
		}
		if tr.Action == experiments.ActionAdvance && tr.ToStep != tr.FromStep+1 {
			t.Errorf("advance #%d from step %d to %d", tr.Seq, tr.FromStep, tr.ToStep)
		}
		if i > 0 && tr.Action == experiments.ActionAdvance && hist[i-1].ToStep != tr.FromStep {
			t.Errorf("advance #%d from step %d, but the previous transition left step %d", tr.Seq, tr.FromStep, hist[i-1].ToStep)
		}
		switch tr.Fence {
		case 0:
			if tr.Actor == experiments.ControllerActor {
				t.Errorf("controller transition #%d without a fence", tr.Seq)
			}
		case oldFence:
			if sawNew || tr.At.After(crashed) {
				t.Errorf("transition #%d under the old fence after the takeover", tr.Seq)
			}
		case newFence:
			sawNew = true
		default:
			t.Errorf("transition #%d under unknown fence %d", tr.Seq, tr.Fence)
		}
	}
	if !sawNew {
		t.Error("the new leader made no transition")
	}
	t.Log(outcome{state: st, history: hist})
	for _, wh := range whs {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := wh.Close(cctx); err != nil {
			t.Error(err)
		}
		cancel()
	}
	hooks.checkDeliveries(t, "webhook receiver", hist)

	// The surviving replica's watcher serves the final allocation within a
	// second of the last transition.
	want := e.AllocationFor(st)
	last := hist[len(hist)-1]
	waitUntil(t, 2*time.Second, "the follower's watcher delivers the promotion", func() bool {
		al, _ := follower.lastAlloc()
		return al != nil && al.Serve == want.Serve && al.Period == want.Period
	})
	_, at := follower.lastAlloc()
	if lag := at.Sub(last.At); lag > time.Second {
		t.Errorf("watcher followed the promotion after %v, want under 1s", lag)
	}
}

// hideFeed is a StateReader without the ChangeFeed, so a watcher of it
// can only poll.
type hideFeed struct{ rollout.StateReader }

// Every replica sees an API change within a second: over pub/sub (with
// polling effectively off), and by polling alone when pub/sub is
// unavailable.
func TestAllocationPropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	t.Parallel()
	srv := storetest.StartRedis(t)
	e := scenarioExperiment("propagate", defaultRollout())
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	lcs := redisstore.NewLifecycle(c, "prop")
	lc := rollout.NewLifecycle(lcs, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type watcher struct {
		name string
		rep  *replica
	}
	var ws []watcher
	for _, mode := range []string{"pubsub", "poll"} {
		rep := &replica{name: mode}
		wc := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { wc.Close() })
		var reader rollout.StateReader = redisstore.NewLifecycle(wc, "prop")
		opts := []rollout.Option{rollout.WithLogger(quiet), rollout.WithPollInterval(time.Hour)}
		if mode == "poll" {
			reader, opts = hideFeed{reader}, opts[:1] // the default poll interval
		}
		w := rollout.NewWatcher(reader, cfg, rep.setAllocation, opts...)
		go w.Run(ctx)
		ws = append(ws, watcher{mode, rep})
	}
	for _, w := range ws {
		waitUntil(t, 2*time.Second, w.name+" initial allocation", func() bool { a, _ := w.rep.lastAlloc(); return a != nil })
	}
	time.Sleep(100 * time.Millisecond) // subscriptions confirmed before Run's first refresh
	cmds := []func() (experiments.Transition, error){
		func() (experiments.Transition, error) { return lc.Start(ctx, e.ID, "api:t", "") },
		func() (experiments.Transition, error) { return lc.SetStep(ctx, e.ID, 2, "api:t", "") },
		func() (experiments.Transition, error) { return lc.Rollback(ctx, e.ID, "api:t", "") },
	}
	for i, cmd := range cmds {
		tr, err := cmd()
		if err != nil {
			t.Fatal(err)
		}
		st, _ := lc.State(ctx, e.ID)
		want := e.AllocationFor(st)
		for _, w := range ws {
			lag := waitUntil(t, 1500*time.Millisecond, fmt.Sprintf("%s sees change %d", w.name, i), func() bool {
				a, _ := w.rep.lastAlloc()
				return a.Serve == want.Serve && a.Period == want.Period && a.Shares[0] == want.Shares[0]
			})
			_, at := w.rep.lastAlloc()
			if d := at.Sub(tr.At); d > time.Second {
				t.Errorf("%s: change %d seen after %v", w.name, i, d)
			}
			t.Logf("%s: %s seen within %v", w.name, tr.Action, lag)
		}
	}

	// Redis goes away: no callbacks, every replica keeps its last allocation.
	counts := make([]int, len(ws))
	for i, w := range ws {
		w.rep.mu.Lock()
		counts[i] = len(w.rep.allocs)
		w.rep.mu.Unlock()
	}
	srv.Stop()
	time.Sleep(1500 * time.Millisecond)
	for i, w := range ws {
		w.rep.mu.Lock()
		n := len(w.rep.allocs)
		w.rep.mu.Unlock()
		if n != counts[i] {
			t.Errorf("%s: %d allocation callbacks while Redis was down", w.name, n-counts[i])
		}
		if a, _ := w.rep.lastAlloc(); a.Serve != 0 {
			t.Errorf("%s: last allocation %+v, want the rolled-back one kept", w.name, a)
		}
	}
}
