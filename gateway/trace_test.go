package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracePropagation(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	e := newEnv(t, nil, nil, nil, WithTracerProvider(tp))

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00f067aa0ba902b7"
	)
	user := userFor(t, e.cfg, 1)
	res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, user), map[string]string{
		"Traceparent": "00-" + traceID + "-" + parent + "-01",
	})
	mustEqual(t, "status", res.StatusCode, 200)

	seen := e.cand.next(t)
	tp0 := strings.Split(seen.Header.Get("Traceparent"), "-")
	if len(tp0) != 4 || tp0[1] != traceID || tp0[2] == parent {
		t.Fatalf("upstream traceparent %q: want trace %s with the gateway span as parent", seen.Header.Get("Traceparent"), traceID)
	}
	<-e.rec.ch

	var spans []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if spans = sr.Ended(); len(spans) > 0 {
			break
		}
	}
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	sp := spans[0]
	mustEqual(t, "trace id", sp.SpanContext().TraceID().String(), traceID)
	mustEqual(t, "parent", sp.Parent().SpanID().String(), parent)
	mustEqual(t, "upstream's parent is our span", sp.SpanContext().SpanID().String(), tp0[2])
	mustEqual(t, "kind", sp.SpanKind(), trace.SpanKindServer)
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
		if strings.Contains(kv.Value.String(), user) {
			t.Errorf("unit id in span attribute %s", kv.Key)
		}
	}
	for k, want := range map[string]string{
		"abgate.experiment":         testExp,
		"abgate.variant":            "ft-v2",
		"abgate.upstream":           "tuned",
		"http.response.status_code": "200",
	} {
		mustEqual(t, "attribute "+k, attrs[k], want)
	}
	for _, ev := range sp.Events() {
		for _, kv := range ev.Attributes {
			if strings.Contains(kv.Value.String(), user) {
				t.Errorf("unit id in span event %s", ev.Name)
			}
		}
	}
}

func TestTraceStartsWithoutParent(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	e := newEnv(t, nil, nil, nil, WithTracerProvider(tp))
	res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, ""), map[string]string{
		"Traceparent": "garbage",
	})
	mustEqual(t, "status", res.StatusCode, http.StatusOK)
	seen := e.base.next(t)
	if tp := seen.Header.Get("Traceparent"); len(tp) != 55 || tp == "garbage" {
		t.Errorf("upstream traceparent %q", tp)
	}
}
