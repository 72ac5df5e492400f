//go:build race

package experiments_test

// raceBuild: sync.Pool drops items at random under -race, so pooled
// code allocates there; zero-allocation assertions skip.
const raceBuild = true
