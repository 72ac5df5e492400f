package judge

import (
	"fmt"
	"time"

	"github.com/abgate/abgate/experiments"
)

// ConfigFrom builds a Judge's Config from an experiment's validated judge
// block (defaults applied) and the config's upstreams: a judge naming an
// upstream takes its URL, key, auth header and headers.
func ConfigFrom(j *experiments.Judge, ups []experiments.Upstream) (Config, error) {
	if j == nil {
		return Config{}, fmt.Errorf("judge: no judge configured")
	}
	c := Config{
		URL: j.URL, APIKey: j.APIKey.Reveal(), Model: j.Model,
		Rubric: j.Rubric, Criteria: j.Criteria,
		MaxConcurrency: j.MaxConcurrency, RatePerSecond: j.RatePerSecond, Burst: j.Burst,
		MaxTokens: j.MaxTokens, Timeout: time.Duration(j.Timeout),
		PromptPrice: j.PromptPrice, CompletionPrice: j.CompletionPrice,
		BudgetPerHour: j.BudgetPerHour, BudgetPerDay: j.BudgetPerDay,
	}
	if j.BothOrdersShare != nil {
		c.BothOrdersShare = *j.BothOrdersShare
	}
	if j.Upstream != "" {
		found := false
		for i := range ups {
			if u := &ups[i]; u.Name == j.Upstream {
				found = true
				c.URL, c.APIKey, c.AuthHeader, c.Headers = u.URL, u.APIKey.Reveal(), u.AuthHeader, u.Headers
			}
		}
		if !found {
			return Config{}, fmt.Errorf("judge: no upstream %q", j.Upstream)
		}
	}
	return c, nil
}
