package recorder

import (
	"log/slog"
	"time"
)

// dropLogEvery is the least time between two log lines about dropped
// outcomes of one experiment: a store outage drops in every flush, and a
// line per flush would drown the log.
const dropLogEvery = 10 * time.Second

// dropLog rate-limits the log lines about dropped request outcomes: at
// most one per experiment per dropLogEvery, carrying the count since the
// previous line. The counts themselves are in Stats at once. The
// recorder calls it with r.mu held.
type dropLog struct {
	unlogged map[string]int64 // experiment ("" unknown) -> drops not yet logged
	last     map[string]time.Time
	// queueFull is the Observe-side count (an atomic in the recorder)
	// already logged.
	queueFull   int64
	queueFullAt time.Time
}

// note counts n drops of experiment exp ("" when unknown).
func (d *dropLog) note(exp string, n int64) {
	if n <= 0 {
		return
	}
	if d.unlogged == nil {
		d.unlogged = make(map[string]int64)
		d.last = make(map[string]time.Time)
	}
	d.unlogged[exp] += n
}

// flush logs what is due; queueFull is the recorder's running count of
// outcomes dropped at a full queue (not attributed to an experiment).
func (d *dropLog) flush(log *slog.Logger, now time.Time, queueFull int64) {
	for exp, n := range d.unlogged {
		if n == 0 || now.Sub(d.last[exp]) < dropLogEvery {
			continue
		}
		if exp == "" {
			log.Warn("recorder: request outcomes dropped (unrecordable)", "dropped", n, "since", d.since(exp))
		} else {
			log.Warn("recorder: request outcomes dropped: the store is not taking them (see GET /api/v1/recorder)",
				"experiment", exp, "dropped", n, "since", d.since(exp))
		}
		d.unlogged[exp] = 0
		d.last[exp] = now
	}
	if n := queueFull - d.queueFull; n > 0 && now.Sub(d.queueFullAt) >= dropLogEvery {
		log.Warn("recorder: request outcomes dropped: queue full (raise recording.queue_size or add replicas)", "dropped", n)
		d.queueFull, d.queueFullAt = queueFull, now
	}
}

func (d *dropLog) since(exp string) string {
	if t := d.last[exp]; !t.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	return "start"
}
