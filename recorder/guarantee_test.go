package recorder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFeedbackNeverDroppedOnceAccepted is the outage run: with
// the store down, outcomes and feedback pour in past the pending limit.
// Feedback is refused (ErrQueueFull, a 503) once the feedback limit is
// reached, never accepted and then dropped: when the store is back every
// accepted feedback event is in it. The outcomes dropped meanwhile are
// counted per experiment and logged once, not once per flush.
func TestFeedbackNeverDroppedOnceAccepted(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{Store: memstore.New()}
	fs.down.Store(true)
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rec := recorder.New(fs, experiments.Recording{QueueSize: 1000, BatchSize: 100, FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(log), recorder.WithPendingLimit(600), recorder.WithFeedbackLimit(250),
		recorder.WithRetryBackoff(time.Millisecond, 2*time.Millisecond))
	accepted, refused := 0, 0
	for i := 0; i < 2392; i++ {
		rec.Observe(outcome(i))
		err := rec.Feedback(experiments.Feedback{Experiment: "e", Phase: 1, Variant: i % 2, Unit: storetest.Unit(i),
			RequestID: fmt.Sprintf("r%d", i), Metric: "thumbs", Value: 1})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, recorder.ErrQueueFull):
			refused++
		default:
			t.Fatal(err)
		}
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond)
			checkAccounting(t, rec.Stats(), false)
		}
	}
	s := rec.Stats()
	if refused == 0 || accepted > 250 || s.PendingFeedback > 250 {
		t.Fatalf("accepted %d, refused %d, pending feedback %d: want refusals past the limit of 250", accepted, refused, s.PendingFeedback)
	}
	if s.DroppedOverflow == 0 || s.Experiments["e"].Dropped == 0 || s.Experiments["e"].DroppedShare <= 0 {
		t.Fatalf("no outcome drops counted per experiment: %+v", s)
	}
	fs.down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = rec.Stats()
	checkAccounting(t, s, true)
	snap, err := fs.Summaries(context.Background(), "e", 1)
	if err != nil {
		t.Fatal(err)
	}
	var stored float64
	for v := 0; v < 2; v++ {
		stored += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricThumbs}].SumY
	}
	if int(stored) != accepted {
		t.Fatalf("store holds %v thumbs, %d were accepted (refused %d)", stored, accepted, refused)
	}
	if s.PendingFeedback != 0 {
		t.Errorf("pending feedback %d after Close", s.PendingFeedback)
	}
	if n := strings.Count(logs.String(), "request outcomes dropped: the store is not taking them"); n != 1 {
		t.Errorf("%d drop log lines within 10s, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "experiment=e") {
		t.Errorf("drop log names no experiment:\n%s", logs.String())
	}
}

// TestFeedbackLostAtShutdownLogged: the one way accepted feedback is
// lost (the store stays down through Close's deadline) is logged at
// error level with the count.
func TestFeedbackLostAtShutdownLogged(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{Store: memstore.New()}
	fs.down.Store(true)
	var logs syncBuf
	rec := recorder.New(fs, experiments.Recording{FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), recorder.WithRetryBackoff(time.Millisecond, 2*time.Millisecond))
	for i := 0; i < 5; i++ {
		if err := rec.Feedback(experiments.Feedback{Experiment: "e", Phase: 1, Unit: storetest.Unit(i), RequestID: "r", Metric: "thumbs", Value: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_ = rec.Close(ctx)
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "feedback_events=5") {
		t.Fatalf("want an error line with feedback_events=5:\n%s", logs.String())
	}
}
