# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo test build bench fuzz fault

demo:
	go run ./cmd/abgate demo

test:
	./scripts/test.sh

build:
	# nomsgpack leaves out gin's msgpack binding, which abgate does not use (6 MiB).
	CGO_ENABLED=0 go build -tags nomsgpack -trimpath -ldflags "-s -w" -o bin/abgate ./cmd/abgate

bench:
	./bench/run.sh

# Each fuzz target for a short while (FUZZTIME=60s for longer).
FUZZTIME ?= 20s
fuzz:
	go test -run '^$$' -fuzz FuzzAssign -fuzztime $(FUZZTIME) ./experiments/
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./experiments/
	go test -run '^$$' -fuzz FuzzScanBody -fuzztime $(FUZZTIME) ./gateway/

# The fault and abuse suite: Redis killed, paused, restarted empty, queue
# overflow, feedback flood, against a redis-server it starts itself. Prints
# the table (docs/recording.md, "Fault suite").
fault:
	go test -tags fault -run TestFault -count=1 -v -timeout 10m ./e2e/ 2>&1 | tee fault.log | grep -E '^\s+\||--- |^(ok|FAIL|PASS)'
