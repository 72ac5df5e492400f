package memstore_test

import (
	"testing"

	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
)

func TestDefinitionsConformance(t *testing.T) {
	t.Parallel()
	storetest.RunDefinitions(t, func(t *testing.T) storetest.DefinitionsStore { return memstore.NewDefinitions() })
}
