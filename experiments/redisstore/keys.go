package redisstore

import (
	"strconv"

	"github.com/abgate/abgate/experiments"
)

// Every key of one experiment carries the hash tag {exp:<id>}, so all of
// them live in one Redis Cluster slot and one Lua script can touch any of
// them atomically. The layout (prefix "abgate"):
//
//	abgate:{exp:<id>}:keys               SET   every key below except batch markers (for Expire)
//	abgate:{exp:<id>}:events             SET   applied feedback event ids
//	abgate:{exp:<id>}:metrics            HASH  metric name -> small integer code (packs user state)
//	abgate:{exp:<id>}:batch:<batch id>   SET   applied chunk indexes of a batch (own TTL, dedup window)
//	abgate:{exp:<id>}:p<n>:variants      SET   variant indexes with data in phase n
//	abgate:{exp:<id>}:p<n>:stats:<v>     HASH  "<metric>:<n|sx|sx2|sy|sy2|sxy|sr|sr2|sz|sz2|sxz>" -> float
//	                                           and "~j:<human>:<judge>:<stat>" -> float (joint sums, Batch.Joint)
//	abgate:{exp:<id>}:p<n>:u:<v>         HASH  unit key (hex) -> msgpack [code, x, y, ..., -code, z, 0, ...]
//	abgate:{exp:<id>}:p<n>:hours         ZSET  hour (since epoch) scored by itself
//	abgate:{exp:<id>}:p<n>:h:<hour>      HASH  "<v>:<metric>:<stat>" -> float (that hour's change)
//	abgate:{exp:<id>}:p<n>:counters      HASH  "<v>:<counter>" -> int
//	abgate:{exp:<id>}:drifthours         ZSET  hours with drift histograms, scored by the hour
//	abgate:{exp:<id>}:drift:<hour>       HASH  "<v>:<feature>:<bin>" -> count (experiment-level, all phases)
//	abgate:{exp:<id>}:feedback           ZSET  feedback records (JSON) scored by expiry in ms (export log)
//
// With CUPED (experiments.Covariates; docs/recording.md):
//
//	abgate:{exp:<id>}:pre:<unit hex>     STRING msgpack [code, x, y, ...]: the unit's pre-exposure history,
//	                                            own TTL (history TTL after its last update; not in :keys)
//	abgate:{exp:<id>}:s<k>:z             HASH  unit key (hex) -> the history as it stood at the unit's first
//	                                            exposure in salt phase k (same format)
//	abgate:{exp:<id>}:s<k>:first         HASH  unit key (hex) -> the data period of its first exposure in salt phase k
//	abgate:{exp:<id>}:covphase           HASH  data period -> its salt phase (set by its first batch)

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "abgate"

type keys struct{ prefix string }

func (k keys) exp(id string) string { return k.prefix + ":{exp:" + id + "}" }

func (k keys) phase(id string, phase int) string {
	return k.exp(id) + ":p" + strconv.Itoa(phase)
}

func (k keys) keySet(id string) string     { return k.exp(id) + ":keys" }
func (k keys) events(id string) string     { return k.exp(id) + ":events" }
func (k keys) groups(id string) string     { return k.exp(id) + ":groups" }
func (k keys) metricDict(id string) string { return k.exp(id) + ":metrics" }
func (k keys) batch(id, batchID string) string {
	return k.exp(id) + ":batch:" + batchID
}

func (k keys) variants(id string, phase int) string { return k.phase(id, phase) + ":variants" }
func (k keys) stats(id string, phase, variant int) string {
	return k.phase(id, phase) + ":stats:" + strconv.Itoa(variant)
}

func (k keys) users(id string, phase, variant int) string {
	return k.usersPrefix(id, phase) + strconv.Itoa(variant)
}

func (k keys) usersPrefix(id string, phase int) string { return k.phase(id, phase) + ":u:" }
func (k keys) covPhase(id string) string               { return k.exp(id) + ":covphase" }
func (k keys) firstExposures(id string, phase int) string {
	return k.exp(id) + ":s" + strconv.Itoa(phase) + ":first"
}
func (k keys) hours(id string, phase int) string { return k.phase(id, phase) + ":hours" }
func (k keys) hour(id string, phase int, h experiments.Hour) string {
	return k.phase(id, phase) + ":h:" + strconv.FormatInt(int64(h), 10)
}
func (k keys) counters(id string, phase int) string { return k.phase(id, phase) + ":counters" }
func (k keys) driftHours(id string) string          { return k.exp(id) + ":drifthours" }
func (k keys) drift(id string, h experiments.Hour) string {
	return k.exp(id) + ":drift:" + strconv.FormatInt(int64(h), 10)
}
func (k keys) feedbackLog(id string) string { return k.exp(id) + ":feedback" }
