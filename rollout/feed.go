package rollout

import (
	"context"
	"log/slog"
	"time"

	"github.com/abgate/abgate/experiments"
)

// follow runs until ctx ends, keeping a reader in step with a store: it
// calls onChange with every id announced on src's ChangeFeed (when src
// has one) and onPoll at once and then every poll interval, so changes
// arrive at once and whatever the feed lost is caught up by polling. A
// subscription that fails or closes is tried again at the next poll.
func follow(ctx context.Context, src any, poll time.Duration, log *slog.Logger, what string, onChange func(id string), onPoll func()) {
	var changes <-chan string
	feed, _ := src.(experiments.ChangeFeed)
	subscribe := func() {
		if feed == nil || changes != nil {
			return
		}
		ch, err := feed.Subscribe(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn(what+": subscribe (polling meanwhile)", "err", err)
			}
			return
		}
		changes = ch
	}
	subscribe()
	onPoll()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			onChange(id)
		case <-t.C:
			subscribe()
			onPoll()
		}
	}
}
