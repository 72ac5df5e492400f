#!/usr/bin/env bash
# Load harness (issue #2): compares, in one run, direct calls to a fake
# OpenAI upstream, a minimal gin + murmur3 + httputil.ReverseProxy
# (bench/minproxy) and abgate, on loopback. See bench/README.md.
#
#   bench/run.sh                          # full run, about 15 minutes
#   DURATION=3s STREAM_DURATION=2s ROUNDS=1 HOLD_STREAMS=500 bench/run.sh   # quick smoke
#   make bench-streams                    # only the many-live-streams scenario
#
# Environment (defaults in brackets):
#   SCENARIOS ["cpu tail ttfb streams shadow"]  what to measure (commas or
#                         spaces): cpu = wrk at full speed (throughput,
#                         CPU per request); tail = fixed-rate open loop
#                         (added p50/p90/p99); ttfb = stream TTFB; streams =
#                         many live streams (HOLD_STREAMS); shadow = abgate
#                         with a shadow stage active (abgate-shadow) beside
#                         abgate, in the cpu and tail runs (issue 14)
#   ROUNDS [3]            interleaved rounds; the report gives medians
#   DURATION [10s]        wrk run and fixed-rate run, per target and round
#   WARMUP [2s]           wrk warm-up before each measured wrk run
#   CONNS [64]            wrk connections
#   RATE [2000]           fixed-rate requests/s (loadgen, open loop): the tail
#   STREAM_RATE [100]     streams/s for the TTFB run
#   STREAM_DURATION [5s]  TTFB run, per target and round
#   TOKEN_DELAY [20ms]    CHUNKS [5]   the streaming fake upstream
#   TARGETS ["direct minproxy bare nginx abgate"]  ("" for none; nginx only if installed;
#                         bare is minproxy --bare: net/http + ReverseProxy)
#   HOLD_STREAMS ["2000 8000"]  many-live-streams scenario: streams held
#                         live at once, per level ("" skips the scenario)
#   HOLD_TARGETS ["direct minproxy abgate abgate-h2c nginx"]  abgate-h2c
#                         speaks h2c to the upstream (upstreams[].h2c)
#   HOLD_CHUNK_DELAY [500ms]  HOLD_CHUNKS [20]   the fake behind the held
#                         streams: a stream lasts HOLD_CHUNKS x the delay
#   HOLD_RAMP [4s]        the held streams are opened evenly over this
#   BASE_PORT [18080]     abgate BASE, minproxy BASE+1, nginx BASE+2,
#                         fakes BASE+10/+11/+13, otlpsink BASE+12,
#                         pprof of the proxy under test BASE+14, the
#                         fake judge BASE+15, redis-server BASE+16
#   PROXY_CPU [0]         core for the proxy under test
#   LOAD_CPU [1]          core for wrk, loadgen and the fake upstreams
#   RESULTS [bench/results/<UTC time>]
#   TRACING [otlp]        otlp: abgate exports its spans over OTLP/HTTP to
#                         bench/otlpsink (on the load core), so tracing
#                         is really on; off: no exporter (no-op spans)
#   REDIS [on]            on: abgate records into a redis-server of its
#                         own (on the load core, nothing persisted), as in
#                         production; off: the embedded in-memory store
#   ABGATE_BIN [""]       use this abgate binary instead of building one
#   BASELINE_BIN [""]     an abgate binary measured as target abgate-base
#                         (add it to TARGETS): a change against the commit
#                         before it, in the same run, rounds interleaved
#   ABGATE_ENV [""]       extra environment for abgate serve (NAME=VALUE ...)
#   MINPROXY_FLAGS [""]   extra flags for minproxy, e.g. "--flush-interval 0"
#   NICE [0]              nice level of every process the harness starts
#                         (e.g. -5, as root) to get a fairer share of a
#                         machine busy with other work; see README
#   TRACE_SLICES [0]      1: after the rounds, take a 5 s runtime/trace of
#                         minproxy and abgate during a tail run (not
#                         counted) and list their goroutines' run slices
#                         of 300 µs or more (slices-<target>.md, bench/slices)
#   PROFILE [0]           1: after the rounds, profile each proxy with perf
#                         during one more wrk run (perf-<target>.txt), not
#                         counted in the figures
#
# Every process started here is stopped by its PID on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
RATE=${RATE:-2000}
STREAM_RATE=${STREAM_RATE:-100}
STREAM_DURATION=${STREAM_DURATION:-5s}
TOKEN_DELAY=${TOKEN_DELAY:-20ms}
CHUNKS=${CHUNKS:-5}
TARGETS=${TARGETS-"direct minproxy bare nginx abgate"}
HOLD_STREAMS=${HOLD_STREAMS-"2000 8000"}
HOLD_TARGETS=${HOLD_TARGETS:-"direct minproxy abgate abgate-h2c nginx"}
HOLD_CHUNK_DELAY=${HOLD_CHUNK_DELAY:-500ms}
HOLD_CHUNKS=${HOLD_CHUNKS:-20}
HOLD_RAMP=${HOLD_RAMP:-4s}
BASE_PORT=${BASE_PORT:-18080}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CHECK_HEADER=${CHECK_HEADER:-X-Abgate-Variant}
ABGATE_ENV=${ABGATE_ENV:-}
REDIS=${REDIS:-on}
TRACING=${TRACING:-otlp}
ABGATE_BIN=${ABGATE_BIN:-}
BASELINE_BIN=${BASELINE_BIN:-}
PROFILE=${PROFILE:-0}
TRACE_SLICES=${TRACE_SLICES:-0}
MINPROXY_FLAGS=${MINPROXY_FLAGS:-}
NICE=${NICE:-0}
RESULTS=${RESULTS:-$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}
SCENARIOS=${SCENARIOS:-"cpu tail ttfb streams shadow"}
SCENARIOS=" ${SCENARIOS//,/ } "
for sc in $SCENARIOS; do
	case $sc in
	cpu | tail | ttfb | streams | shadow) ;;
	*)
		echo "run.sh: unknown scenario $sc in SCENARIOS (cpu, tail, ttfb, streams, shadow)" >&2
		exit 1
		;;
	esac
done
has_scenario() { [[ $SCENARIOS == *" $1 "* ]]; }
has_scenario streams || HOLD_STREAMS=
if has_scenario shadow; then
	# shadow on vs off: abgate-shadow beside abgate, both against direct
	for t in direct abgate abgate-shadow; do
		[[ " $TARGETS " == *" $t "* ]] || TARGETS+=" $t"
	done
	if ! has_scenario cpu && ! has_scenario tail; then
		echo "run.sh: the shadow scenario is measured in the cpu and tail runs: add one of them to SCENARIOS" >&2
		exit 1
	fi
fi
if ! has_scenario cpu && ! has_scenario tail && ! has_scenario ttfb; then
	TARGETS=
fi

ABGATE_PORT=$BASE_PORT
MINPROXY_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
FAKE_PORT=$((BASE_PORT + 10))
FAKE_STREAM_PORT=$((BASE_PORT + 11))
SINK_PORT=$((BASE_PORT + 12))
FAKE_HOLD_PORT=$((BASE_PORT + 13))
DEBUG_PORT=$((BASE_PORT + 14))
JUDGE_PORT=$((BASE_PORT + 15))
REDIS_PORT=$((BASE_PORT + 16))
# the admin token in bench/abgate-shadow.yaml
SHADOW_ADMIN_TOKEN=bench-only-admin-token-not-for-production
CHAT=/v1/chat/completions

# need_pkg BINARY DEBIAN_PACKAGE: installs what the harness needs when it
# is missing (as scripts/test.sh does); NO_INSTALL=1 only reports it.
need_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${NO_INSTALL:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "run.sh: $1 not found (apt-get install -y $2)" >&2
		return 1
	fi
	echo "run.sh: installing $2" >&2
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if [ -z "${APT_UPDATED:-}" ]; then
		$sudo apt-get update -qq >/dev/null
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}
need_pkg wrk wrk || exit 1
need_pkg taskset util-linux || exit 1
case $REDIS in
on) need_pkg redis-server redis-server || exit 1 ;;
off) ;;
*)
	echo "run.sh: REDIS must be on or off" >&2
	exit 1
	;;
esac
# nginx is the non-Go reference; without it the harness still runs.
need_pkg nginx nginx-light || true
if [ "$(nproc)" -lt 2 ]; then
	echo "run.sh: needs 2 cores (proxy on one, load and upstream on the other); nproc=$(nproc)" >&2
	exit 1
fi
CLK_TCK=$(getconf CLK_TCK)
# A proxy with HTTP/1.1 upstreams holds two descriptors per live stream,
# loadgen and the fake one each: as many as this shell may allow.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if ! command -v nginx >/dev/null; then
	# nginx is the non-Go reference (apt-get install -y nginx-light).
	TARGETS=$(echo "$TARGETS" | sed 's/nginx//')
	HOLD_TARGETS=$(echo "$HOLD_TARGETS" | sed 's/nginx//')
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/abgate-bench.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
RAW=$RESULTS/raw.jsonl

# ---- process bookkeeping: every PID we start, stopped on exit ----------
PIDS=()
stop_pid() { # stop one process we started, by PID
	local pid=$1
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}
cleanup() {
	local p
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p"; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID: until PORT accepts connections; fails if PID died.
wait_port() {
	local port=$1 pid=$2
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# start NAME CPU CMD... : start pinned with GOMAXPROCS=1; sets STARTED_PID.
start() {
	local name=$1 cpu=$2
	shift 2
	GOMAXPROCS=1 nice -n "$NICE" taskset -c "$cpu" "$@" >"$RESULTS/$name.log" 2>&1 &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
}

cpu_ticks() { # utime+stime of a PID, in clock ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# ---- build -------------------------------------------------------------
log "building into $BIN"
(
	cd "$ROOT"
	# Every Go binary as `make build` builds abgate for release: static,
	# no symbol tables, gin without msgpack. Idle RSS is mostly the pages
	# of the binary that start-up touches, so it depends on this.
	export CGO_ENABLED=0
	flags=(-tags nomsgpack -trimpath -ldflags "-s -w")
	if [ -n "$ABGATE_BIN" ]; then
		cp "$ABGATE_BIN" "$BIN/abgate"
	else
		go build "${flags[@]}" -o "$BIN/abgate" ./cmd/abgate
	fi
	if [ -n "$BASELINE_BIN" ]; then
		cp "$BASELINE_BIN" "$BIN/abgate-base"
	fi
	go build "${flags[@]}" -o "$BIN/minproxy" ./bench/minproxy
	go build "${flags[@]}" -o "$BIN/loadgen" ./bench/loadgen
	go build "${flags[@]}" -o "$BIN/report" ./bench/report
	go build "${flags[@]}" -o "$BIN/otlpsink" ./bench/otlpsink
	go build "${flags[@]}" -o "$BIN/slices" ./bench/slices
)

mkdir -p "$RESULTS"
: >"$RAW"

for p in "$ABGATE_PORT" "$MINPROXY_PORT" "$NGINX_PORT" "$FAKE_PORT" "$FAKE_STREAM_PORT" "$SINK_PORT" "$FAKE_HOLD_PORT" "$DEBUG_PORT" "$JUDGE_PORT" "$REDIS_PORT"; do
	port_free "$p" || { echo "run.sh: port $p is in use; set BASE_PORT" >&2; exit 1; }
done

# upstream_port KIND: the fake behind a measurement of KIND.
upstream_port() {
	case $1 in
	stream) echo "$FAKE_STREAM_PORT" ;;
	hold) echo "$FAKE_HOLD_PORT" ;;
	*) echo "$FAKE_PORT" ;;
	esac
}

# abgate configs: bench/abgate.yaml with this run's ports; the -h2c ones
# speak h2c to the fake (which serves HTTP/1.1 and h2c).
for kind in plain stream hold; do
	sed -e "s#127\.0\.0\.1:18080#127.0.0.1:$ABGATE_PORT#g" \
		-e "s#127\.0\.0\.1:18090#127.0.0.1:$(upstream_port "$kind")#g" \
		"$BENCH_DIR/abgate.yaml" >"$WORK/abgate-$kind.yaml"
	sed -e "s#127\.0\.0\.1:18080#127.0.0.1:$ABGATE_PORT#g" \
		-e "s#127\.0\.0\.1:18090#127.0.0.1:$(upstream_port "$kind")#g" \
		-e "s#127\.0\.0\.1:18095#127.0.0.1:$JUDGE_PORT#g" \
		"$BENCH_DIR/abgate-shadow.yaml" >"$WORK/abgate-shadow-$kind.yaml"
	sed -e 's#^\(  *\)max_idle_conns: \(.*\)$#\1max_idle_conns: \2\n\1h2c: true#' \
		"$WORK/abgate-$kind.yaml" >"$WORK/abgate-h2c-$kind.yaml"
	grep -q 'h2c: true' "$WORK/abgate-h2c-$kind.yaml" || { echo "run.sh: could not make the h2c config" >&2; exit 1; }
	if [ "$REDIS" = on ]; then
		# Recording into the harness's own redis-server, which persists
		# nothing (hence ephemeral_ok).
		for f in "$WORK/abgate-$kind.yaml" "$WORK/abgate-shadow-$kind.yaml" "$WORK/abgate-h2c-$kind.yaml"; do
			printf '\nredis:\n  addrs: ["127.0.0.1:%s"]\n  ephemeral_ok: true\n' "$REDIS_PORT" >>"$f"
		done
	fi
	# nginx: one worker, HTTP/1.1 keep-alive upstream, no buffering of
	# responses (SSE passes through as it comes), as a streaming
	# gateway would be configured.
	mkdir -p "$WORK/nginx-$kind"
	cat >"$WORK/nginx-$kind.conf" <<-NGINX
		worker_processes 1;
		daemon off;
		pid $WORK/nginx-$kind/nginx.pid;
		error_log $RESULTS/nginx-$kind-error.log warn;
		worker_rlimit_nofile $NOFILE;
		events { worker_connections $NOFILE; }
		http {
		    access_log off;
		    client_body_temp_path $WORK/nginx-$kind/body;
		    proxy_temp_path $WORK/nginx-$kind/proxy;
		    upstream fake { server 127.0.0.1:$(upstream_port "$kind"); keepalive 1024; }
		    server {
		        listen 127.0.0.1:$NGINX_PORT;
		        location / {
		            proxy_pass http://fake;
		            proxy_http_version 1.1;
		            proxy_set_header Connection "";
		            proxy_buffering off;
		        }
		    }
		}
	NGINX
done

# BACKGROUND runs a process that stands for a service on other machines
# (abgate's Redis, its trace collector) on the load core without taking
# it from loadgen and the fake upstream: SCHED_IDLE, so it runs only when
# they do not and a waking fake preempts it at once. nice 19 alone was not
# enough: it lowers the share, but on Linux's EEVDF scheduler a waking
# task does not always preempt a running one before its slice ends, and
# Redis's Lua scripts (8% of the load core at 2,000 req/s) and the sink's
# decoding delayed the fake's answers to abgate's requests only.
if command -v chrt >/dev/null; then
	BACKGROUND=(chrt --idle 0 nice -n 19)
else
	BACKGROUND=(nice -n 19)
fi

# ---- redis-server (on the load core) -----------------------------------
if [ "$REDIS" = on ]; then
	# In production Redis runs on other machines. Here it shares the load
	# core with loadgen and the fake upstream, in the background (above).
	# The proxy's own side of recording stays on the proxy's core.
	start redis "$LOAD_CPU" "${BACKGROUND[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
		--dir "$WORK" --protected-mode yes
	wait_port "$REDIS_PORT" "$STARTED_PID" || { echo "run.sh: redis-server did not start" >&2; cat "$RESULTS/redis.log" >&2; exit 1; }
fi

# ---- fake upstreams (on the load core) ---------------------------------
start fake "$LOAD_CPU" "$BIN/abgate" fake-upstream --listen "127.0.0.1:$FAKE_PORT"
FAKE_PID=$STARTED_PID
start fake-stream "$LOAD_CPU" "$BIN/abgate" fake-upstream --listen "127.0.0.1:$FAKE_STREAM_PORT" \
	--token-delay "$TOKEN_DELAY" --chunks "$CHUNKS"
FAKE_STREAM_PID=$STARTED_PID
wait_port "$FAKE_PORT" "$FAKE_PID" || { echo "run.sh: fake upstream did not start:" >&2; cat "$RESULTS/fake.log" >&2; exit 1; }
wait_port "$FAKE_STREAM_PORT" "$FAKE_STREAM_PID" || { echo "run.sh: streaming fake upstream did not start" >&2; exit 1; }
if [ -n "$HOLD_STREAMS" ]; then
	start fake-hold "$LOAD_CPU" "$BIN/abgate" fake-upstream --listen "127.0.0.1:$FAKE_HOLD_PORT" \
		--token-delay "$HOLD_CHUNK_DELAY" --chunks "$HOLD_CHUNKS"
	wait_port "$FAKE_HOLD_PORT" "$STARTED_PID" || { echo "run.sh: the many-streams fake upstream did not start" >&2; exit 1; }
fi
if has_scenario shadow; then
	start fake-judge "$LOAD_CPU" "$BIN/abgate" fake-upstream --judge --listen "127.0.0.1:$JUDGE_PORT"
	FAKE_JUDGE_PID=$STARTED_PID
	wait_port "$JUDGE_PORT" "$FAKE_JUDGE_PID" || { echo "run.sh: the fake judge did not start" >&2; exit 1; }
fi

# abgate's tracing: every span exported over OTLP/HTTP to a sink, or off.
case $TRACING in
otlp)
	# The sink stands for a collector on other machines: in the
	# background on the load core, like the harness's Redis, so decoding
	# abgate's spans does not delay the fake's answers to abgate's requests.
	start otlpsink "$LOAD_CPU" "${BACKGROUND[@]}" "$BIN/otlpsink" --listen "127.0.0.1:$SINK_PORT"
	wait_port "$SINK_PORT" "$STARTED_PID" || { echo "run.sh: otlpsink did not start" >&2; exit 1; }
	TRACE_ENV="OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf"
	TRACE_ENV+=" OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$SINK_PORT/v1/traces"
	TRACE_ENV+=" OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none"
	;;
off) TRACE_ENV="OTEL_TRACES_EXPORTER=none" ;;
*)
	echo "run.sh: TRACING must be otlp or off" >&2
	exit 1
	;;
esac

# start_target TARGET KIND: starts the proxy for TARGET (none for direct)
# in front of the plain, streaming or many-streams fake; sets TARGET_PID
# (empty for direct), MEASURE_PID (the process whose CPU and memory are
# measured: nginx's worker, else TARGET_PID) and TARGET_URL. Returns 1
# (and logs why) if it can't. minproxy and abgate serve pprof on
# DEBUG_PORT.
start_target() {
	local target=$1 kind=$2 up
	up=$(upstream_port "$kind")
	TARGET_PID=
	MEASURE_PID=
	case $target in
	direct)
		TARGET_URL=http://127.0.0.1:$up$CHAT
		return 0
		;;
	minproxy | bare)
		local extra=(--debug "127.0.0.1:$DEBUG_PORT")
		[ "$target" = bare ] && extra+=(--bare --flush-interval 0)
		# shellcheck disable=SC2086 # MINPROXY_FLAGS is a list of words
		start "$target-$kind" "$PROXY_CPU" "$BIN/minproxy" --listen "127.0.0.1:$MINPROXY_PORT" \
			--upstream "http://127.0.0.1:$up" "${extra[@]}" $MINPROXY_FLAGS
		TARGET_URL=http://127.0.0.1:$MINPROXY_PORT$CHAT
		;;
	abgate | abgate-h2c | abgate-shadow | abgate-base)
		local bin=$BIN/abgate config=$WORK/$target-$kind.yaml
		if [ "$target" = abgate-base ]; then
			if [ ! -x "$BIN/abgate-base" ]; then
				SKIP_REASON="abgate-base needs BASELINE_BIN"
				return 1
			fi
			bin=$BIN/abgate-base config=$WORK/abgate-$kind.yaml
		fi
		# shellcheck disable=SC2086 # lists of NAME=VALUE words
		start "$target-$kind" "$PROXY_CPU" env $TRACE_ENV ABGATE_DEBUG_ADDR="127.0.0.1:$DEBUG_PORT" $ABGATE_ENV \
			"$bin" serve --config "$config"
		TARGET_URL=http://127.0.0.1:$ABGATE_PORT$CHAT
		;;
	nginx)
		start "nginx-$kind" "$PROXY_CPU" nginx -e "$RESULTS/nginx-$kind-error.log" -c "$WORK/nginx-$kind.conf"
		TARGET_URL=http://127.0.0.1:$NGINX_PORT$CHAT
		;;
	*)
		SKIP_REASON="unknown target $target"
		return 1
		;;
	esac
	TARGET_PID=$STARTED_PID
	MEASURE_PID=$TARGET_PID
	local port=${TARGET_URL#http://127.0.0.1:}
	port=${port%%/*}
	if ! wait_port "$port" "$TARGET_PID"; then
		SKIP_REASON="$target did not start: $(tail -n 3 "$RESULTS/$target-$kind.log" | tr '\n"' ' \047')"
		stop_pid "$TARGET_PID"
		TARGET_PID=
		return 1
	fi
	# one request must succeed before measuring
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H 'X-User-ID: probe' \
		--max-time 5 -d '{"model":"bench","messages":[{"role":"user","content":"hello"}]}' "$TARGET_URL" || true)
	if [ "$code" != 200 ]; then
		SKIP_REASON="$target answered $code to a probe request"
		stop_pid "$TARGET_PID"
		TARGET_PID=
		return 1
	fi
	if [ "$target" = nginx ]; then
		MEASURE_PID=$(ps -o pid= --ppid "$TARGET_PID" | head -n 1 | tr -d ' ')
		[ -n "$MEASURE_PID" ] || MEASURE_PID=$TARGET_PID
	fi
	if [ "$target" = abgate-shadow ] && ! start_shadow; then
		stop_pid "$TARGET_PID"
		TARGET_PID=
		return 1
	fi
}

# start_shadow: starts the bench experiment of abgate-shadow through the
# admin API (draft -> shadow stage) and waits until the gateway samples
# requests for the replay: the fake judge has been called. Sets
# SKIP_REASON and returns 1 if that does not happen within 15 s.
start_shadow() {
	local admin=http://127.0.0.1:$ABGATE_PORT/api/v1/experiments/bench code status i
	code=$(curl -s -o "$WORK/shadow-start.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $SHADOW_ADMIN_TOKEN" \
		-H 'Content-Type: application/json' -d '{"reason":"load harness: shadow scenario"}' --max-time 5 "$admin/start" || true)
	if [ "$code" != 200 ]; then
		SKIP_REASON="abgate-shadow: start answered $code: $(head -c 200 "$WORK/shadow-start.json" | tr '\n"' ' \047')"
		return 1
	fi
	for i in $(seq 150); do
		status=$(curl -s -H "Authorization: Bearer $SHADOW_ADMIN_TOKEN" --max-time 2 "$admin" | grep -o '"status": *"[a-z_]*"' | head -n 1 || true)
		# a few requests, so the replay has something to judge
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -H "X-User-ID: shadow-probe-$i" --max-time 2 \
			-d '{"model":"bench","messages":[{"role":"user","content":"hello"}]}' "$TARGET_URL" || true
		if [[ $status == *shadow* ]] && grep -q 'first judge call' "$RESULTS/fake-judge.log" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	SKIP_REASON="abgate-shadow: the experiment did not reach its shadow stage with judge calls within 15 s (status: ${status:-none})"
	return 1
}

to_us() { # wrk duration (850.00us, 1.20ms, 2.00s) -> microseconds
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
		else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60e6 }
		else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1e6 }
		else print 0 }'
}

# measure_wrk ROUND TARGET: max throughput and CPU per request.
measure_wrk() {
	local round=$1 target=$2 out=$RESULTS/wrk-$2-r$1.txt
	nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" -s "$BENCH_DIR/post.lua" "$TARGET_URL" >/dev/null
	local pid=${MEASURE_PID:-$FAKE_PID}
	local t0 f0 t1 f1 w0 w1
	t0=$(cpu_ticks "$pid")
	f0=$(cpu_ticks "$FAKE_PID")
	w0=$(date +%s.%N)
	nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$BENCH_DIR/post.lua" "$TARGET_URL" >"$out"
	w1=$(date +%s.%N)
	t1=$(cpu_ticks "$pid")
	f1=$(cpu_ticks "$FAKE_PID")
	local rps reqs non2xx sockerr p50 p99
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	reqs=$(awk '/requests in/ { print $1 }' "$out")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$out")
	sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
	p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
	p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
	awk -v round="$round" -v target="$target" -v rps="${rps:-0}" -v reqs="${reqs:-0}" \
		-v errs="$(( ${non2xx:-0} + ${sockerr:-0} ))" -v dt="$((t1 - t0))" -v df="$((f1 - f0))" \
		-v wall="$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" -v tck="$CLK_TCK" \
		-v proxied="$([ -n "$TARGET_PID" ] && echo 1 || echo 0)" -v p50="$p50" -v p99="$p99" \
		-v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
		cpu = dt / tck; fcpu = df / tck
		per = (reqs > 0 && proxied) ? cpu * 1e6 / reqs : 0
		util = (proxied && wall > 0) ? cpu / wall : 0
		fper = reqs > 0 ? fcpu * 1e6 / reqs : 0
		printf "{\"round\":%d,\"target\":\"%s\",\"kind\":\"wrk\",\"rps\":%s,\"requests\":%d,\"errors\":%d,", round, target, rps, reqs, errs
		printf "\"proxy_cpu_s\":%.3f,\"proxy_cpu_us_per_req\":%.2f,\"proxy_util\":%.3f,\"upstream_cpu_us_per_req\":%.2f,", cpu, per, util, fper
		printf "\"wall_s\":%.3f,\"wrk_p50_us\":%.1f,\"wrk_p99_us\":%.1f,\"loadavg1\":%s}\n", wall, p50, p99, la
	}' >>"$RAW"
	log "  wrk: $rps req/s, $reqs requests, errors $(( ${non2xx:-0} + ${sockerr:-0} )), cpu ticks $((t1 - t0))"
}

# measure_loadgen ROUND TARGET KIND: fixed-rate latency or stream TTFB.
measure_loadgen() {
	local round=$1 target=$2 kind=$3 res
	local args=(-url "$TARGET_URL" -label "$target" -rate "$RATE" -duration "$DURATION")
	[ "$kind" = stream ] && args=(-url "$TARGET_URL" -label "$target" -stream -rate "$STREAM_RATE" -duration "$STREAM_DURATION")
	case $target in abgate*) args+=(-check-header "$CHECK_HEADER") ;; esac
	res=$(GOMAXPROCS=1 nice -n "$NICE" taskset -c "$LOAD_CPU" "$BIN/loadgen" "${args[@]}" 2>>"$RESULTS/loadgen.log" || true)
	[ -n "$res" ] || res='{"ok":0,"first_error":"loadgen failed"}'
	printf '{"round":%d,"target":"%s","kind":"%s","result":%s}\n' "$round" "$target" "$kind" "$res" >>"$RAW"
	log "  $kind: $(echo "$res" | sed -E 's/.*"ok":([0-9]+),"errors":([0-9]+).*"p50_us":([0-9.]+),"p90_us":[0-9.]+,"p99_us":([0-9.]+).*/ok \1 errors \2 p50 \3us p99 \4us/')"
}

# measure_hold ROUND TARGET N: N streams live at once through TARGET;
# RSS, heap, stacks and goroutines of the proxy idle and with all of them
# live, and each stream's time to its first chunk.
measure_hold() {
	local round=$1 target=$2 n=$3 res
	local args=(-url "$TARGET_URL" -label "$target" -hold "$n" -ramp "$HOLD_RAMP" -timeout 60s -pid "${MEASURE_PID:-0}")
	case $target in minproxy | bare | abgate | abgate-h2c) args+=(-debug "http://127.0.0.1:$DEBUG_PORT") ;; esac
	[ "${target%-h2c}" = abgate ] && args+=(-check-header "$CHECK_HEADER")
	res=$(GOMAXPROCS=1 nice -n "$NICE" taskset -c "$LOAD_CPU" "$BIN/loadgen" "${args[@]}" 2>>"$RESULTS/loadgen.log" || true)
	[ -n "$res" ] || res='{"ok":0,"first_error":"loadgen failed"}'
	printf '{"round":%d,"target":"%s","kind":"hold-%d","result":%s}\n' "$round" "$target" "$n" "$res" >>"$RAW"
	log "  hold $n: $(echo "$res" | sed -E 's/.*"ok":([0-9]+),"errors":([0-9]+).*"ttfb_p50_us":([0-9.]+).*/ok \1 errors \2 ttfb p50 \3us/') rss $(echo "$res" | sed -nE 's/.*"rss_live_kib":([0-9]+).*/\1 KiB/p')"
}

read -r -a TARGET_LIST <<<"$TARGETS"
read -r -a HOLD_LIST <<<"$HOLD_TARGETS"
declare -A SKIPPED=()
log "results in $RESULTS; rounds=$ROUNDS duration=$DURATION rate=$RATE stream_rate=$STREAM_RATE targets=${TARGET_LIST[*]}"
for ((round = 1; round <= ROUNDS; round++)); do
	# interleave: rotate the order of the targets every round
	n=${#TARGET_LIST[@]}
	for ((i = 0; i < n; i++)); do
		target=${TARGET_LIST[$(((i + round - 1) % n))]}
		[ -n "${SKIPPED[$target]:-}" ] && continue
		log "round $round/$ROUNDS: $target"
		if ! start_target "$target" plain; then
			log "  skipping $target: $SKIP_REASON"
			SKIPPED[$target]=1
			printf '{"round":%d,"target":"%s","kind":"skip","reason":"%s"}\n' "$round" "$target" "$SKIP_REASON" >>"$RAW"
			continue
		fi
		has_scenario cpu && measure_wrk "$round" "$target"
		has_scenario tail && measure_loadgen "$round" "$target" rate
		[ -n "$TARGET_PID" ] && stop_pid "$TARGET_PID"
		# the shadow target is measured in the cpu and tail runs only
		if ! has_scenario ttfb || [ "$target" = abgate-shadow ]; then
			continue
		fi
		if ! start_target "$target" stream; then
			log "  no stream run for $target: $SKIP_REASON"
			continue
		fi
		measure_loadgen "$round" "$target" stream
		[ -n "$TARGET_PID" ] && stop_pid "$TARGET_PID"
	done
	# many live streams: a fresh proxy for each level, so idle is idle
	for level in $HOLD_STREAMS; do
		n=${#HOLD_LIST[@]}
		for ((i = 0; i < n; i++)); do
			target=${HOLD_LIST[$(((i + round - 1) % n))]}
			log "round $round/$ROUNDS: $level live streams through $target"
			if ! start_target "$target" hold; then
				log "  no many-streams run for $target: $SKIP_REASON"
				continue
			fi
			measure_hold "$round" "$target" "$level"
			[ -n "$TARGET_PID" ] && stop_pid "$TARGET_PID"
		done
	done
done

# ---- optional: where the tail comes from (runtime/trace run slices) ------
if [ "$TRACE_SLICES" = 1 ]; then
	for target in minproxy abgate; do
		start_target "$target" plain || continue
		log "tracing $target during a tail run"
		GOMAXPROCS=1 nice -n "$NICE" taskset -c "$LOAD_CPU" "$BIN/loadgen" -url "$TARGET_URL" -rate "$RATE" \
			-duration 9s >"$RESULTS/loadgen-trace-$target.json" 2>>"$RESULTS/loadgen.log" &
		lg=$!
		PIDS+=("$lg")
		sleep 2
		curl -s --max-time 10 -o "$RESULTS/trace-$target.out" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/trace?seconds=5" || true
		wait "$lg" 2>/dev/null || true
		stop_pid "$lg"
		stop_pid "$TARGET_PID"
		"$BIN/slices" "$RESULTS/trace-$target.out" >"$RESULTS/slices-$target.md" 2>&1 || true
		log "  $RESULTS/slices-$target.md"
	done
fi

# ---- optional profile: perf on each proxy during one more wrk run -------
if [ "$PROFILE" = 1 ]; then
	if ! command -v perf >/dev/null; then
		log "PROFILE=1 but perf is not installed (apt-get install -y linux-perf); no profile"
	else
		for target in "${TARGET_LIST[@]}"; do
			[ "$target" = direct ] && continue
			[ -n "${SKIPPED[$target]:-}" ] && continue
			start_target "$target" plain || continue
			log "profiling $target"
			secs=$(awk -v d="$DURATION" 'BEGIN { sub(/s$/, "", d); print d + 0 }')
			perf record -F 999 -g -o "$WORK/perf-$target.data" -p "$TARGET_PID" -- sleep "$secs" >/dev/null 2>&1 &
			perf_pid=$!
			PIDS+=("$perf_pid")
			nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/post.lua" "$TARGET_URL" >/dev/null
			wait "$perf_pid" 2>/dev/null || true
			stop_pid "$perf_pid"
			stop_pid "$TARGET_PID"
			perf report -i "$WORK/perf-$target.data" --no-children --sort symbol --stdio 2>/dev/null |
				grep -v '^$' | head -n 400 >"$RESULTS/perf-$target.txt" || true
			perf report -i "$WORK/perf-$target.data" --children --sort symbol --stdio -g none 2>/dev/null |
				grep -v '^$' | head -n 200 >"$RESULTS/perf-$target-cumulative.txt" || true
			log "  $RESULTS/perf-$target.txt"
		done
	fi
fi

# the fake judge logs its count of judge calls when it stops
[ -n "${FAKE_JUDGE_PID:-}" ] && stop_pid "$FAKE_JUDGE_PID"
{
	echo "## abgate load harness — $(date -u +'%Y-%m-%d %H:%M UTC')"
	echo
	echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(go version | awk '{ print $3 }'); proxy pinned to core $PROXY_CPU, wrk + loadgen + fake upstream on core $LOAD_CPU; GOMAXPROCS=1."
	echo "abgate: tracing $TRACING$([ "$TRACING" = otlp ] && echo " (OTLP/HTTP to bench/otlpsink)"), outcome recording to $([ "$REDIS" = on ] && echo "Redis (the harness's own redis-server, SCHED_IDLE on the load core)" || echo "the in-memory store"), segments and fallback on."
	echo "Scenarios:$SCENARIOS"
	if has_scenario shadow; then
		echo "abgate-shadow: bench/abgate-shadow.yaml, the experiment in its shadow stage (every user sampled; replays and judge calls at up to 100/s); $(grep -h 'judge calls$' "$RESULTS/fake-judge.log" 2>/dev/null || echo 'judge calls: see fake-judge.log') (counted when the fake judge stops)."
	fi
	echo "Settings: ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS RATE=$RATE STREAM_RATE=$STREAM_RATE STREAM_DURATION=$STREAM_DURATION TOKEN_DELAY=$TOKEN_DELAY CHUNKS=$CHUNKS HOLD_STREAMS=\"$HOLD_STREAMS\" HOLD_CHUNK_DELAY=$HOLD_CHUNK_DELAY HOLD_CHUNKS=$HOLD_CHUNKS HOLD_RAMP=$HOLD_RAMP REDIS=$REDIS TRACING=$TRACING, ulimit -n $NOFILE; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	"$BIN/report" -raw "$RAW" -json "$RESULTS/summary.json"
} | tee "$RESULTS/summary.md"
log "raw results: $RAW"
