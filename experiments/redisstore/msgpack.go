package redisstore

import (
	"encoding/binary"
	"math"
)

// packer writes the few msgpack types the apply script's payload uses.
// Redis decodes it with its built-in cmsgpack, which is much faster than
// parsing thousands of ARGV strings with tonumber.
type packer struct {
	b []byte
	n int // values written (the top-level array's length)
}

// arrayHeader reserves a 32-bit array header at the current position and
// returns its offset; setArray fills it in once the length is known.
func (p *packer) arrayHeader() int {
	off := len(p.b)
	p.b = append(p.b, 0xdd, 0, 0, 0, 0)
	return off
}

func (p *packer) setArray(off, n int) {
	binary.BigEndian.PutUint32(p.b[off+1:], uint32(n))
}

func (p *packer) int(v int64) {
	p.n++
	switch {
	case v >= 0 && v < 128:
		p.b = append(p.b, byte(v))
	case v >= -32 && v < 0:
		p.b = append(p.b, byte(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.b = append(p.b, 0xd2)
		p.b = binary.BigEndian.AppendUint32(p.b, uint32(int32(v)))
	default:
		p.b = append(p.b, 0xd3)
		p.b = binary.BigEndian.AppendUint64(p.b, uint64(v))
	}
}

// float writes an integral value as an integer (shorter; Lua numbers are
// doubles either way) and anything else as a float64.
func (p *packer) float(v float64) {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 && !(v == 0 && math.Signbit(v)) {
		p.int(int64(v))
		return
	}
	p.n++
	p.b = append(p.b, 0xcb)
	p.b = binary.BigEndian.AppendUint64(p.b, math.Float64bits(v))
}

func (p *packer) str(s string) { packStr(p, s) }

// bytes writes b as a msgpack string, without converting it to one.
func (p *packer) bytes(b []byte) { packStr(p, b) }

func packStr[T string | []byte](p *packer, s T) {
	p.n++
	switch n := len(s); {
	case n < 32:
		p.b = append(p.b, 0xa0|byte(n))
	case n < 1<<8:
		p.b = append(p.b, 0xd9, byte(n))
	case n < 1<<16:
		p.b = append(p.b, 0xda)
		p.b = binary.BigEndian.AppendUint16(p.b, uint16(n))
	default:
		p.b = append(p.b, 0xdb)
		p.b = binary.BigEndian.AppendUint32(p.b, uint32(n))
	}
	p.b = append(p.b, s...)
}
