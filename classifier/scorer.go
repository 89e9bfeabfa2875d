package classifier

import (
	"errors"
	"fmt"
	"sync"

	"switchyard/features"
)

// Scorer computes the predicted quality of every model of a predictor for
// one feature vector. Implementations are safe for concurrent use.
type Scorer interface {
	// Score writes one value in [0,1] per model, in Models order, into out,
	// which must have len(Models) elements.
	Score(v *features.Vector, out []float32) error
	// Close releases the scorer's resources.
	Close() error
}

// GoScorer scores with the pure-Go forward pass.
type GoScorer struct {
	m    *Model
	pool sync.Pool
}

// NewGoScorer returns a Scorer over m's weights.
func NewGoScorer(m *Model) (*GoScorer, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("go scorer: %w", err)
	}
	s := &GoScorer{m: m}
	s.pool.New = func() any { return new(Activations) }
	return s, nil
}

// Score implements Scorer.
func (s *GoScorer) Score(v *features.Vector, out []float32) error {
	if len(out) != s.m.nout {
		return fmt.Errorf("score: %w: output has %d slots for %d models", errBadInput, len(out), s.m.nout)
	}
	if err := checkVector(v, s.m.Meta.FeatureSpec.Buckets); err != nil {
		return err
	}
	a := s.pool.Get().(*Activations)
	s.m.Forward(v, a)
	copy(out, a.Out)
	s.pool.Put(a)
	return nil
}

// Close implements Scorer.
func (s *GoScorer) Close() error { return nil }

// errBadInput marks errors about the input vector, not the scorer.
var errBadInput = errors.New("bad feature vector")

func checkVector(v *features.Vector, buckets int) error {
	if len(v.Dense) != features.NumDense {
		return fmt.Errorf("score: %w: %d dense signals, want %d", errBadInput, len(v.Dense), features.NumDense)
	}
	if v.TaskID < 0 || int(v.TaskID) >= buckets {
		return fmt.Errorf("score: %w: task id %d out of range", errBadInput, v.TaskID)
	}
	for _, id := range v.IDs {
		if id < 0 || int(id) >= buckets {
			return fmt.Errorf("score: %w: id %d out of range [0,%d)", errBadInput, id, buckets)
		}
	}
	return nil
}
