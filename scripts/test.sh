#!/usr/bin/env bash
# Runs every test abgate has, on a fresh machine: formatting, vet,
# staticcheck, deadcode, and the race-enabled test suite. Tests that need
# Redis start their own redis-server on a free loopback port, and the
# report page's test its own headless Chromium; this script only makes
# sure both are installed. staticcheck and deadcode are fetched at pinned
# versions by `go run`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkg() { # need_pkg BINARY DEBIAN_PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "test.sh: installing $2 (needed by the tests)"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if [ -z "${apt_updated:-}" ]; then
		$sudo apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}
need_pkg redis-server redis-server
need_pkg chromium chromium
need_pkg promtool prometheus

# The report page's browser test must run here, not skip; its screenshots
# land in artifacts/.
export ABGATE_REQUIRE_BROWSER=1
# The /metrics exposition is checked by promtool, never skipped here.
export ABGATE_REQUIRE_PROMTOOL=1
export ABGATE_ARTIFACTS="${ABGATE_ARTIFACTS:-$PWD/artifacts}"

unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt needed on:"; echo "$unformatted"; exit 1
fi
go vet ./...
# The long suites (make sim, make fault) are not run here, but they must
# compile: a change to a shared signature otherwise breaks them unseen.
go vet -tags simulation ./...
go vet -tags fault ./...
# staticcheck: bugs, deprecated APIs, unused code. It exits non-zero on any
# finding.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# deadcode: functions nothing reaches. -test makes tests roots too: the
# test-support packages (experiments/storetest, internal/deptest) and the
# test seams (WithClock and the like) are reached only from tests, and
# deadcode has no per-site suppression, so without -test this check could
# never pass. What is reached only from tests is reviewed by hand:
# `deadcode ./...` lists it. deadcode exits 0 when it finds something.
dead=$(go run golang.org/x/tools/cmd/deadcode@v0.52.0 -test ./...)
if [ -n "$dead" ]; then
	echo "test.sh: unreachable code (delete it, or use it):"; echo "$dead"; exit 1
fi
go test -race -shuffle=on -count=1 "$@" ./...
# The live-stream stack check measures frame depths, which the race
# detector enlarges: it also runs without -race (cmd/abgate/stack_test.go).
go test -count=1 -run '^TestLiveStreamStack$' ./cmd/abgate/
make chart-test
