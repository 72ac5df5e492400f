package main

import (
	"log/slog"
	"os"
	"strconv"

	"github.com/abgate/abgate/internal/gcfloor"
)

// defaultGCFloorMiB is the heap headroom below which the garbage
// collector does not start a cycle (internal/gcfloor): the load harness's
// tail scenario collected several times a second at 2,000 requests/s with
// the runtime's own 4 MiB minimum.
const defaultGCFloorMiB = 16

// startGCFloor starts the GC floor from ABGATE_GC_FLOOR_MIB (default 16;
// 0 turns it off). An environment variable, like GOGC and GOMEMLIMIT
// beside which it acts, not a config field: it tunes the process, not
// the deployment's routing or statistics (docs/deploy.md, "Memory").
func startGCFloor(log *slog.Logger) *gcfloor.Tuner {
	mib := uint64(defaultGCFloorMiB)
	if v, ok := os.LookupEnv("ABGATE_GC_FLOOR_MIB"); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			log.Warn("ABGATE_GC_FLOOR_MIB ignored: not a whole number of MiB", "value", v)
		} else {
			mib = n
		}
	}
	return gcfloor.Start(mib << 20)
}
