package training

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/features"
)

// Job is one training run over a dataset, logs, or both.
type Job struct {
	Models          []string // pool, in output order; empty: every catalogue model with outcomes
	Spec            features.Spec
	ValidationShare float64 // share of prompts held out for early stopping and metrics
	SplitSalt       string  // salt of the split by prompt id
	Now             func() time.Time
	// Logs, when set, adds bandit feedback from decision and outcome logs,
	// weighted by clipped, normalised inverse propensities (see FromLogs).
	Logs *Logs
	// Table, when set, adds the examples of a training table (FromTable).
	Table *Table
	// Catalogue is needed when there is no dataset (logs only).
	Catalogue *datasets.Catalogue
}

// Logs are decision and outcome logs to learn from.
type Logs struct {
	Decisions []datasets.DecisionRecord
	Outcomes  []datasets.OutcomeRecord
	Clip      float64 // largest inverse-propensity weight
	Stats     LogStats
}

// Fit joins the dataset and the logs, splits them by prompt, trains and
// fills the model's metadata (expected output tokens, data fingerprint,
// creation time, validation metrics, version). ds may be nil when job.Logs
// is set.
func (t *Trainer) Fit(ctx context.Context, ds *datasets.Dataset, job Job) (*classifier.Model, *Result, error) {
	if ds == nil && job.Logs == nil && job.Table == nil {
		return nil, nil, fmt.Errorf("fit: no data: give a dataset, logs, a training table or several")
	}
	cat := job.Catalogue
	if ds != nil {
		cat = ds.Catalogue
	}
	if cat == nil {
		return nil, nil, fmt.Errorf("fit: no catalogue")
	}
	var tableOutcomes []datasets.OutcomeRecord
	if job.Table != nil {
		tableOutcomes = TableOutcomes(job.Table.Rows)
	}
	models := job.Models
	if len(models) == 0 {
		var outs []datasets.OutcomeRecord
		if ds != nil {
			outs = append(outs, ds.Outcomes...)
		}
		if job.Logs != nil {
			outs = append(outs, job.Logs.Outcomes...)
		}
		outs = append(outs, tableOutcomes...)
		models = modelsWithOutcomes(cat, outs)
	}
	for _, m := range models {
		if _, ok := cat.Lookup(m); !ok {
			return nil, nil, fmt.Errorf("fit: model %q is not in the catalogue", m)
		}
	}
	ext, err := features.NewExtractor(job.Spec)
	if err != nil {
		return nil, nil, err
	}
	var ex []Example
	var allOutcomes []datasets.OutcomeRecord
	if ds != nil {
		if ex, _, _, err = Join(ds, ext, models); err != nil {
			return nil, nil, err
		}
		allOutcomes = append(allOutcomes, ds.Outcomes...)
	}
	if job.Logs != nil {
		lex, st, err := FromLogs(job.Logs.Decisions, job.Logs.Outcomes, ext, models, job.Logs.Clip)
		if err != nil {
			return nil, nil, err
		}
		job.Logs.Stats = st
		ex = append(ex, lex...)
		allOutcomes = append(allOutcomes, job.Logs.Outcomes...)
		if err := st.Links().Err(); err != nil {
			if len(ex) == 0 && st.Links().AllWithoutDecision() {
				return nil, nil, fmt.Errorf("fit: no examples: %w", err)
			}
			if len(ex) == 0 {
				return nil, nil, fmt.Errorf("fit: no examples for models %v; also, %w", models, err)
			}
			if t.Log != nil {
				t.Log.Warn("outcomes without decision", "count", st.OutcomesWithoutDecision, "outcomes", st.Outcomes, "detail", err.Error())
			}
		}
	}
	if job.Table != nil {
		tex, st, err := FromTable(job.Table.Rows, ext, models)
		if err != nil {
			return nil, nil, err
		}
		job.Table.Stats = st
		ex = append(ex, tex...)
		allOutcomes = append(allOutcomes, tableOutcomes...)
	}
	if len(ex) == 0 {
		return nil, nil, fmt.Errorf("fit: no examples for models %v", models)
	}
	train, val := Split(ex, job.SplitSalt, job.ValidationShare)
	if len(train) == 0 {
		return nil, nil, fmt.Errorf("fit: all %d prompts fell in the validation split", len(ex))
	}
	tt := *t
	if tt.Costs == nil {
		tt.Costs = meanCosts(cat, allOutcomes, models)
	}
	m, res, err := tt.Train(ctx, job.Spec, models, train, val)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now
	if job.Now != nil {
		now = job.Now
	}
	m.Meta.OutputTokens = TokenMeans(allOutcomes, models)
	m.Meta.Observations = map[string]int{}
	for _, e := range ex {
		for j, w := range e.Weights {
			if w > 0 {
				m.Meta.Observations[models[j]]++
			}
		}
	}
	if job.Logs != nil {
		m.Meta.ObservedUntil = job.Logs.Stats.Newest
	}
	if job.Table != nil {
		m.Meta.ObservedUntil = latest(m.Meta.ObservedUntil, job.Table.Stats.Newest)
	}
	m.Meta.DataFingerprint = fingerprint(ex, models)
	m.Meta.CreatedAt = now().UTC().Truncate(time.Second)
	m.Meta.Version = m.Fingerprint()
	return m, res, nil
}

// meanCosts is each model's mean cost per request over its outcomes that
// carry one; a model without any is priced from the catalogue at the mean
// input tokens of all outcomes and its own mean output tokens.
func meanCosts(cat *datasets.Catalogue, outcomes []datasets.OutcomeRecord, models []string) []float64 {
	col := make(map[string]int, len(models))
	for j, m := range models {
		col[m] = j
	}
	type acc struct{ cost, priced, out, n float64 }
	per := make([]acc, len(models))
	var in, nin float64
	for _, o := range outcomes {
		if o.InputTokens > 0 {
			in, nin = in+float64(o.InputTokens), nin+1
		}
		j, ok := col[o.Model]
		if !ok {
			continue
		}
		a := &per[j]
		a.out, a.n = a.out+float64(o.OutputTokens), a.n+1
		if o.CostUSD > 0 {
			a.cost, a.priced = a.cost+o.CostUSD, a.priced+1
		}
	}
	costs := make([]float64, len(models))
	for j, a := range per {
		if a.priced > 0 {
			costs[j] = a.cost / a.priced
			continue
		}
		price, _ := cat.Lookup(models[j])
		costs[j] = price.CostUSD(in/max(nin, 1), a.out/max(a.n, 1))
	}
	return costs
}

func modelsWithOutcomes(cat *datasets.Catalogue, outcomes []datasets.OutcomeRecord) []string {
	seen := map[string]bool{}
	for _, o := range outcomes {
		seen[o.Model] = true
	}
	var out []string
	for _, m := range cat.Models { // catalogue order
		if seen[m.Name] {
			out = append(out, m.Name)
		}
	}
	return out
}

// Manifest is the small JSON file written next to the ONNX model.
type Manifest struct {
	Predictor        string                        `json:"predictor"` // ONNX file name
	PredictorVersion string                        `json:"predictor_version"`
	Models           []string                      `json:"models"`
	FeatureSpecID    string                        `json:"feature_spec_id"`
	FeatureSpec      features.Spec                 `json:"feature_spec"`
	DataFingerprint  string                        `json:"data_fingerprint"`
	CreatedAt        time.Time                     `json:"created_at"`
	Validation       map[string]classifier.Metrics `json:"validation"`
	OutputTokens     map[string]float64            `json:"expected_output_tokens"`
	Settings         Settings                      `json:"settings"`
	Epochs           int                           `json:"epochs"`
	BestEpoch        int                           `json:"best_epoch"`
	TrainExamples    int                           `json:"train_examples"`
	ValLoss          float64                       `json:"validation_loss"`
	TrainSeconds     float64                       `json:"train_seconds"`
	Blend            *Blend                        `json:"blend,omitempty"` // how network and sparse linear path were blended; absent: the network alone
}

// Artifact file names inside an output folder.
const (
	PredictorFile = "predictor.onnx"
	ManifestFile  = "manifest.json"
)

// WriteArtifacts writes the ONNX predictor and its manifest into dir.
func WriteArtifacts(dir string, m *classifier.Model, res *Result, s Settings) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write artifacts: %w", err)
	}
	if err := classifier.WriteONNX(filepath.Join(dir, PredictorFile), m); err != nil {
		return err
	}
	man := Manifest{
		Predictor: PredictorFile, PredictorVersion: m.Meta.Version, Models: m.Meta.Models,
		FeatureSpecID: m.Meta.FeatureSpecID, FeatureSpec: m.Meta.FeatureSpec, DataFingerprint: m.Meta.DataFingerprint,
		CreatedAt: m.Meta.CreatedAt, Validation: m.Meta.Validation, OutputTokens: m.Meta.OutputTokens, Settings: s,
		Epochs: res.Epochs, BestEpoch: res.BestEpoch, TrainExamples: res.Examples, ValLoss: res.ValLoss,
		TrainSeconds: res.Duration.Seconds(), Blend: res.Blend,
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
