package gateway

import (
	"io"
	"testing"
	"time"
)

// chunkReader yields one prepared chunk per Read, as an upstream's
// flushed SSE events arrive.
type chunkReader struct {
	chunks [][]byte
	i      int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.i == len(c.chunks) {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[c.i])
	c.i++
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

// streamChunks is a 200-chunk chat stream, one event per read.
func streamChunks(includeUsage bool) [][]byte {
	null := ""
	if includeUsage {
		null = `,"usage":null`
	}
	var out [][]byte
	for i := 0; i < 200; i++ {
		out = append(out, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]`+null+"}\n\n"))
	}
	out = append(out, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]`+null+"}\n\n"))
	if includeUsage {
		out = append(out, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":200,"total_tokens":231}}`+"\n\n"))
	}
	return append(out, []byte("data: [DONE]\n\n"))
}

// BenchmarkStreamChunks is the per-chunk path: the meter reading one
// upstream event per Read into the proxy's 32 KiB buffer. "plain" is a
// stream passed through as before; "strip" is one whose usage the
// gateway asked for, with every "usage":null and the usage event cut.
// One op is a whole 200-chunk stream; allocations must stay at zero.
func BenchmarkStreamChunks(b *testing.B) {
	for _, bc := range []struct {
		name  string
		strip bool
	}{{"plain", false}, {"strip", true}} {
		b.Run(bc.name, func(b *testing.B) {
			chunks := streamChunks(bc.strip)
			size := 0
			for _, c := range chunks {
				size += len(c)
			}
			buf := make([]byte, copyBufSize)
			r := &chunkReader{chunks: chunks}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.i = 0
				m := bodyMeter{rc: r, now: time.Now, stream: true, strip: bc.strip}
				for {
					_, err := m.Read(buf)
					if err != nil {
						break
					}
				}
				m.Close()
				if !m.completed || (bc.strip && m.prompt != 31) {
					b.Fatal("stream not measured")
				}
			}
		})
	}
}
