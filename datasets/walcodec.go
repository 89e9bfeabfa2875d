package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The decision log goes through a write-ahead log before Parquet, written on
// the routing path before the answer is sent, so a decision is encoded in a
// compact binary form there (JSON through reflection costs several times
// more). decisionWALVersion is the first byte of every encoded decision.
const decisionWALVersion = 1

// AppendWAL appends the decision's write-ahead-log encoding to b.
func (r *DecisionRecord) AppendWAL(b []byte) []byte {
	b = append(b, decisionWALVersion)
	for _, s := range [...]string{r.DecisionID, r.RequestID, r.PromptID, r.Prompt, r.PromptSHA256, r.Task,
		r.FeatureSpecID, r.PredictorVersion, r.Policy, r.PolicyVersion, r.Chosen, r.Experiment, r.Arm, r.UnitHash} {
		b = appendString(b, s)
	}
	b = appendTime(b, r.Time)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.QualityBar))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Propensity))
	b = binary.AppendVarint(b, r.InputTokens)
	b = binary.AppendUvarint(b, uint64(len(r.Candidates)))
	for _, c := range r.Candidates {
		b = appendString(b, c.Model)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.PredictedQuality))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.ExpectedCostUSD))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Probability))
	}
	return b
}

// DecodeWAL decodes what AppendWAL wrote.
func (r *DecisionRecord) DecodeWAL(b []byte) error {
	d := walDecoder{b: b}
	if v := d.byte(); v != decisionWALVersion {
		return fmt.Errorf("decision record: unknown encoding version %d", v)
	}
	for _, s := range [...]*string{&r.DecisionID, &r.RequestID, &r.PromptID, &r.Prompt, &r.PromptSHA256, &r.Task,
		&r.FeatureSpecID, &r.PredictorVersion, &r.Policy, &r.PolicyVersion, &r.Chosen, &r.Experiment, &r.Arm, &r.UnitHash} {
		*s = d.string()
	}
	r.Time = d.time()
	r.QualityBar = d.float()
	r.Propensity = d.float()
	r.InputTokens = d.varint()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each candidate takes more than a byte
		return errors.New("decision record: candidate count past the end")
	}
	r.Candidates = make([]Candidate, n)
	for i := range r.Candidates {
		c := &r.Candidates[i]
		c.Model = d.string()
		c.PredictedQuality, c.ExpectedCostUSD, c.Probability = d.float(), d.float(), d.float()
	}
	if d.err != nil {
		return fmt.Errorf("decision record: %w", d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("decision record: %d bytes left over", len(d.b))
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime writes a time as microseconds since the Unix epoch plus one (0:
// the zero time), the precision the Parquet logs keep.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	us := t.UnixMicro()
	if us >= 0 {
		us++
	}
	return binary.AppendVarint(b, us)
}

// walDecoder reads what the append functions above wrote; the first error
// sticks and later reads return zero values.
type walDecoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated record")

func (d *walDecoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *walDecoder) uvarint() uint64 { return decodeVarint(d, binary.Uvarint) }

func (d *walDecoder) varint() int64 { return decodeVarint(d, binary.Varint) }

// decodeVarint reads one varint with decode (binary.Uvarint or
// binary.Varint), which returns the value and the bytes it took (0 or less
// when b holds no complete, valid varint).
func decodeVarint[V int64 | uint64](d *walDecoder, decode func(b []byte) (V, int)) V {
	if d.err != nil {
		return 0
	}
	v, n := decode(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *walDecoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errTruncated
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *walDecoder) float() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errTruncated
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *walDecoder) time() time.Time {
	us := d.varint()
	switch {
	case d.err != nil || us == 0:
		return time.Time{}
	case us > 0:
		us--
	}
	return time.UnixMicro(us).UTC()
}
