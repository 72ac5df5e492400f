//go:build !race

package experiments_test

const raceBuild = false
