package classifier

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"switchyard/features"
)

// FallbackScorer scores with a primary scorer (ONNX Runtime) and, once the
// primary fails, with a fallback (the pure-Go forward pass over the same
// weights, so the same numbers) for good: a request never fails because the
// runtime did. Health reports the failure until the scorer is replaced.
type FallbackScorer struct {
	primary, fallback Scorer
	onFallback        func() // called for every scoring the fallback answers
	failed            atomic.Bool
	mu                sync.Mutex
	cause             error
}

// NewFallbackScorer combines primary and fallback; onFallback may be nil.
func NewFallbackScorer(primary, fallback Scorer, onFallback func()) *FallbackScorer {
	return &FallbackScorer{primary: primary, fallback: fallback, onFallback: onFallback}
}

// Score implements Scorer.
func (f *FallbackScorer) Score(v *features.Vector, out []float32) error {
	if !f.failed.Load() {
		err := f.primary.Score(v, out)
		if err == nil {
			return nil
		}
		if errors.Is(err, errBadInput) {
			return err // the input, not the runtime: the fallback would refuse it too
		}
		f.mu.Lock()
		if f.cause == nil {
			f.cause = err
		}
		f.mu.Unlock()
		f.failed.Store(true)
	}
	if f.onFallback != nil {
		f.onFallback()
	}
	return f.fallback.Score(v, out)
}

// Health is nil while the primary works, and says why not once it failed.
func (f *FallbackScorer) Health() error {
	if !f.failed.Load() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Errorf("onnx runtime failed (%v): scoring with the pure-Go forward pass", f.cause)
}

// Close implements Scorer.
func (f *FallbackScorer) Close() error {
	return errors.Join(f.primary.Close(), f.fallback.Close())
}
