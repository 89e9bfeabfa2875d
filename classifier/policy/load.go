package policy

import (
	"fmt"
	"os"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/features"
)

// Scorer kinds for LoadOptions.Scorer.
const (
	ScorerONNX = "onnx" // ONNX Runtime
	ScorerGo   = "go"   // the pure-Go forward pass
)

// LoadOptions name the files a router is built from.
type LoadOptions struct {
	ModelPath  string // ONNX predictor written by training
	Catalogue  *datasets.Catalogue
	Scorer     string // ScorerONNX (default) or ScorerGo
	RuntimeLib string // ONNX Runtime library; see classifier.FindRuntimeLibrary
	Policy     Config
	// OnFallback is called for every scoring answered by the pure-Go scorer
	// after ONNX Runtime failed (for a metric); may be nil.
	OnFallback func()
}

// LoadRouter reads a predictor and builds a router over it. The ONNX file is
// checked completely (metadata, weights, feature spec) before anything is
// returned; with ScorerONNX it is also loaded into ONNX Runtime.
func LoadRouter(opts LoadOptions) (*Router, classifier.Scorer, error) {
	raw, err := os.ReadFile(opts.ModelPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load predictor: %w", err)
	}
	meta, err := classifier.ReadMetadata(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("load predictor %s: %w", opts.ModelPath, err)
	}
	ext, err := features.NewExtractor(meta.FeatureSpec)
	if err != nil {
		return nil, nil, fmt.Errorf("load predictor %s: this build cannot compute its features: %w", opts.ModelPath, err)
	}
	parse := func() (*classifier.Model, error) {
		m, err := classifier.ParseONNX(raw)
		if err != nil {
			return nil, fmt.Errorf("load predictor %s: %w", opts.ModelPath, err)
		}
		return m, nil
	}
	var sc classifier.Scorer
	switch opts.Scorer {
	case "", ScorerONNX:
		rt, err := classifier.OpenRuntime(classifier.FindRuntimeLibrary(opts.RuntimeLib))
		if err != nil {
			return nil, nil, err
		}
		// ONNX Runtime first, then the Go decoding: the two copies of the
		// weights are not made while ONNX Runtime holds its own parse
		ort, err := classifier.NewORTScorer(rt, raw, meta)
		if err != nil {
			if _, perr := parse(); perr != nil {
				return nil, nil, perr // what is wrong with the file, in our words
			}
			return nil, nil, fmt.Errorf("load predictor %s: %w", opts.ModelPath, err)
		}
		m, err := parse()
		if err != nil {
			ort.Close()
			return nil, nil, err
		}
		goScorer, err := classifier.NewGoScorer(m)
		if err != nil {
			ort.Close()
			return nil, nil, err
		}
		sc = classifier.NewFallbackScorer(ort, goScorer, opts.OnFallback)
	case ScorerGo:
		m, err := parse()
		if err != nil {
			return nil, nil, err
		}
		if sc, err = classifier.NewGoScorer(m); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("unknown scorer %q (want %s or %s)", opts.Scorer, ScorerONNX, ScorerGo)
	}
	r, err := NewRouter(ext, sc, meta, opts.Catalogue, opts.Policy)
	if err != nil {
		sc.Close()
		return nil, nil, err
	}
	return r, sc, nil
}

// ModelRouter builds a router over a predictor held in memory (one just
// trained, or built by a test), scored by the pure-Go forward pass.
func ModelRouter(m *classifier.Model, cat *datasets.Catalogue, cfg Config) (*Router, error) {
	ext, err := features.NewExtractor(m.Meta.FeatureSpec)
	if err != nil {
		return nil, fmt.Errorf("router over predictor %s: %w", m.Meta.Version, err)
	}
	sc, err := classifier.NewGoScorer(m)
	if err != nil {
		return nil, fmt.Errorf("router over predictor %s: %w", m.Meta.Version, err)
	}
	return NewRouter(ext, sc, m.Meta, cat, cfg)
}
