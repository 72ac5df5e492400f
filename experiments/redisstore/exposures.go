package redisstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/abgate/abgate/experiments"
)

// FirstExposures implements experiments.ExposureReader: it scans the
// salt phase's first-exposure hash (HSCAN, so a phase with many users
// does not block Redis).
func (s *Store) FirstExposures(ctx context.Context, exp string, phase int) (map[experiments.UnitKey]int, error) {
	out := map[experiments.UnitKey]int{}
	iter := s.c.HScan(ctx, s.k.firstExposures(exp, phase), 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		field := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		var u experiments.UnitKey
		if n, err := hex.Decode(u[:], []byte(field)); err != nil || n != len(u) {
			return nil, fmt.Errorf("first exposures of %q: bad unit %q", exp, field)
		}
		p, err := strconv.Atoi(iter.Val())
		if err != nil {
			return nil, fmt.Errorf("first exposures of %q: bad period %q", exp, iter.Val())
		}
		out[u] = p
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("first exposures of %q: %w", exp, err)
	}
	return out, nil
}
