package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// gateRecorder holds Observe until the client has read its answer (or a
// safety timeout passes), and says which came first.
type gateRecorder struct {
	read     chan struct{}
	answered chan bool
}

func (g *gateRecorder) Observe(experiments.Outcome) {
	select {
	case <-g.read:
		g.answered <- true
	case <-time.After(10 * time.Second): // no answer before the recording: fail, don't hang
		g.answered <- false
	}
}

// TestAnswerBeforeRecording: a JSON answer with a Content-Length reaches
// the client before the gateway records the outcome and ends the span,
// not after the handler returns.
func TestAnswerBeforeRecording(t *testing.T) {
	g := &gateRecorder{read: make(chan struct{}), answered: make(chan bool, 1)}
	e := newEnv(t, nil, nil, nil, WithRecorder(g))
	res, err := http.Post(e.front.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(testAlias, "u1")))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ContentLength <= 0 || res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, Content-Length %d: want a 200 with a length", res.StatusCode, res.ContentLength)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil || int64(len(b)) != res.ContentLength {
		t.Fatalf("read %d of %d bytes: %v", len(b), res.ContentLength, err)
	}
	close(g.read)
	if !<-g.answered {
		t.Fatal("the outcome was recorded before the client had its answer")
	}
}
