package api

import (
	"errors"
	"net/url"
	"testing"
)

// FuzzPlan: the plan path (query parsing, validation, stats.SampleSize)
// never panics, and it either answers with positive, finite users or
// refuses with a *ParamError naming the parameter (issue 11: `abgate plan
// --baseline 0.1 --mde 1e-300` panicked in stats.ConfSeqRho2).
func FuzzPlan(f *testing.F) {
	f.Add("0.1", "1e-300", "true", "", "confidence-sequence", "")
	f.Add("0.1", "0.05", "true", "", "msprt", "5000")
	f.Add("120", "5", "false", "40", "group-sequential", "100")
	f.Add("0.5", "1e-7", "false", "", "confidence-sequence", "")
	f.Add("1e-300", "0.5", "true", "", "confidence-sequence", "1e300")
	f.Fuzz(func(t *testing.T, baseline, mde, relative, sd, method, daily string) {
		q := url.Values{"baseline": {baseline}, "mde": {mde}, "relative": {relative}, "method": {method}}
		if sd != "" {
			q.Set("sd", sd)
		}
		if daily != "" {
			q.Set("daily_users", daily)
		}
		req, err := ParsePlanQuery(q)
		if err != nil {
			return
		}
		res, err := MakePlan(req)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" {
				t.Fatalf("error %v is not a ParamError", err)
			}
			return
		}
		u := res.UsersPerVariant
		if !(u.Fixed > 0) || !(u.Sequential > 0) || !finiteNum(u.Fixed) || !finiteNum(u.Sequential) {
			t.Fatalf("users %+v for %+v", u, req)
		}
	})
}
