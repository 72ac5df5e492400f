# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo test chart-test build bench bench-streams fuzz sim sim-judge fault

demo:
	go run ./cmd/abgate demo

test:
	./scripts/test.sh

# The Helm chart rendered and strictly decoded against the Kubernetes API
# types; a module of its own, so Helm stays out of abgate's go.mod. It
# imports abgate's config loader through a replace, so -mod=mod lets a
# dependency bump in abgate's go.mod through instead of failing here.
chart-test:
	cd deploy/helm/chart_test && GOFLAGS=-mod=mod go vet ./... && GOFLAGS=-mod=mod go test -count=1 ./...

build:
	# nomsgpack leaves out gin's msgpack binding, which abgate does not use (6 MiB).
	CGO_ENABLED=0 go build -tags nomsgpack -trimpath -ldflags "-s -w" -o bin/abgate ./cmd/abgate

bench:
	./bench/run.sh

# Only the many-live-streams scenario (2,000 and 8,000 streams at once),
# against minproxy, nginx if installed, and abgate with HTTP/1.1 and h2c
# upstreams; see bench/README.md.
bench-streams:
	SCENARIOS=streams ./bench/run.sh

# Each fuzz target for a short while (FUZZTIME=60s for longer).
FUZZTIME ?= 20s
fuzz:
	go test -run '^$$' -fuzz FuzzAssign -fuzztime $(FUZZTIME) ./experiments/
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./experiments/
	go test -run '^$$' -fuzz FuzzScanBody -fuzztime $(FUZZTIME) ./gateway/
	go test -run '^$$' -fuzz FuzzJudgeGate -fuzztime $(FUZZTIME) ./stats/
	go test -run '^$$' -fuzz FuzzPPI -fuzztime $(FUZZTIME) ./stats/
	go test -run '^$$' -fuzz FuzzParseVerdict -fuzztime $(FUZZTIME) ./judge/

# Every seeded simulation (the statistics' validity and speed tables, the
# controller at the guardrail margin, carry-over, CUPED through the stores,
# the ramp step's cohort; docs/statistics.md): about 7 minutes on 2 cores.
sim:
	@go test -tags simulation -count=1 -timeout 30m -v -run 'Sim' ./stats/ ./rollout/ ./experiments/memstore/ > sim.log 2>&1; status=$$?; \
	grep -E '^\s+([a-z_]+_test\.go:[0-9]+: )?\||^(---|ok|FAIL|PASS)' sim.log; exit $$status

# The shadow judge gate's and PPI's seeded simulations (docs/statistics.md §9).
sim-judge:
	go test -tags simulation -count=1 -run 'SimJudge|SimPPI' -v ./stats/ ./experiments/memstore/ ./rollout/

# The fault and abuse suite: Redis killed, paused, restarted empty, queue
# overflow, feedback flood, against a redis-server it starts itself
# (TestFault); slow bodies, idle connections, upstream refused, slow, 500
# and cut mid-stream (TestFaultGateway). Prints the tables
# (docs/recording.md, "Fault suite").
fault:
	@go test -tags fault -run TestFault -count=1 -v -timeout 10m ./e2e/ > fault.log 2>&1; status=$$?; \
	grep -E '^\s+\||--- |^(ok|FAIL|PASS)' fault.log; exit $$status
