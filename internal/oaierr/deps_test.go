package oaierr

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps keeps oaierr usable from every layer, the data plane included.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/gin-gonic/gin": "oaierr writes to any http.ResponseWriter; gin's is one",
		"testing":                  "do not use the testing package in production code",
	})
}
