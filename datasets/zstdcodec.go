package datasets

import (
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"
)

// smallZstd is parquet's ZSTD codec with a window sized to a page instead
// of klauspost's 8 MiB default: parquet compresses each page (at most about
// DefaultPageBufferSize, 256 KiB) on its own with EncodeAll, so a longer
// window finds nothing more, yet every encoder holds a 2×window history
// (16 MiB by default), and parquet-go keeps its encoders in a sync.Pool that
// every GC may empty, so a busy server re-allocates them again and again.
// Encoders here live in a small free list that the GC does not drain.
type smallZstd struct {
	mu   sync.Mutex
	free []*zstd.Encoder
}

const smallZstdWindow = 1 << 18 // 256 KiB: parquet-go's default page buffer

func (c *smallZstd) String() string                            { return "ZSTD" }
func (c *smallZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *smallZstd) Encode(dst, src []byte) ([]byte, error) {
	c.mu.Lock()
	var e *zstd.Encoder
	if n := len(c.free); n > 0 {
		e, c.free = c.free[n-1], c.free[:n-1]
	}
	c.mu.Unlock()
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithWindowSize(smallZstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	c.mu.Lock()
	if len(c.free) < 4 {
		c.free = append(c.free, e)
	}
	c.mu.Unlock()
	return out, nil
}

func (c *smallZstd) Decode(dst, src []byte) ([]byte, error) { return parquet.Zstd.Decode(dst, src) }

var smallZstdCodec = &smallZstd{}

func writerCodec() compress.Codec { return smallZstdCodec }
