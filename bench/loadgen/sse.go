package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// readSSE reads a server-sent-events body to its end, calling onData once,
// at the first "data:" line. It reports whether a data line and the
// closing "data: [DONE]" were seen, and a read error other than EOF.
func readSSE(br *bufio.Reader, onData func()) (data, done bool, err error) {
	for {
		line, rerr := br.ReadSlice('\n')
		if !data && bytes.HasPrefix(line, []byte("data:")) {
			data = true
			onData()
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			done = true
		}
		if rerr != nil {
			if errors.Is(rerr, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(rerr, io.EOF) {
				return data, done, nil
			}
			return data, done, rerr
		}
	}
}

// errStreamIncomplete is a stream that ended without data or [DONE].
var errStreamIncomplete = errors.New("stream ended without data or [DONE]")
