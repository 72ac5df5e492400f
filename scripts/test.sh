#!/usr/bin/env bash
# Runs every test abgate has, on a fresh machine: formatting, vet, and the
# race-enabled test suite. Tests that need Redis start their own
# redis-server on a free loopback port, and the report page's test its own
# headless Chromium; this script only makes sure both are installed.
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
go test -race -shuffle=on -count=1 "$@" ./...
make chart-test
