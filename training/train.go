package training

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"slices"
	"time"

	"switchyard/classifier"
	"switchyard/features"
)

// Settings are the knobs of a training run.
type Settings struct {
	Seed         int64 // every random choice (init, shuffling) derives from it
	EmbeddingDim int   // width of the n-gram embeddings
	Hidden       int   // width of the hidden layer
	Epochs       int   // maximum passes over the training data
	BatchSize    int   // examples per Adam step
	// Buffer is the shuffle buffer, in examples, of training from tables
	// (FitTable); 0: 65,536.
	Buffer        int
	L2            float64 // L2 penalty on weights (not biases)
	Patience      int     // epochs without validation improvement before stopping
	PriorStrength float64 // pseudo-observations of the overall mean mixed into each task's prior
	NoCalibration bool    // skip Platt scaling of each output on the validation examples
	IDDropout     float64 // share of n-gram ids dropped at random from each training example (regularises the bag)
	// TaskDropout is the share of labelled training examples whose task
	// label is hidden at random (each epoch), so that the predictor also
	// learns to route prompts that arrive without one.
	TaskDropout float64
	Optimizer   Adam
	// TuneFolds is the number of folds of the training part whose
	// out-of-fold routing AIQ chooses the blend of the network and the
	// sparse linear path (needs per-model costs, see Trainer.Costs). 0:
	// automatic, 5 folds up to 5,000 training examples (each inner model
	// then sees 80% of a small set) and 3 above (67% of a large set trains
	// a model close to the final one, at less cost); 1: no blend, the
	// network alone.
	TuneFolds    int
	LinearEpochs int     // passes of the sparse linear path's AdaGrad
	LinearRate   float64 // its learning rate
	LinearL2     float64 // its L2 penalty
}

// DefaultSettings are sensible settings for a few thousand to a few hundred
// thousand prompts.
func DefaultSettings() Settings {
	return Settings{Seed: 1, EmbeddingDim: 16, Hidden: 64, Epochs: 30, BatchSize: 64, L2: 1e-6, Patience: 3, PriorStrength: 20,
		TaskDropout: 0.5, LinearEpochs: 5, LinearRate: 0.05, LinearL2: 1e-6,
		Optimizer: Adam{LearningRate: 3e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}}
}

func (s Settings) validate() error {
	switch {
	case s.EmbeddingDim < 1 || s.Hidden < 1:
		return fmt.Errorf("settings: embedding dim %d and hidden %d must be positive", s.EmbeddingDim, s.Hidden)
	case s.Epochs < 1:
		return fmt.Errorf("settings: epochs %d must be positive", s.Epochs)
	case s.BatchSize < 1:
		return fmt.Errorf("settings: batch size %d must be positive", s.BatchSize)
	case s.Buffer < 0:
		return fmt.Errorf("settings: shuffle buffer %d must not be negative", s.Buffer)
	case s.L2 < 0 || math.IsNaN(s.L2):
		return fmt.Errorf("settings: l2 %v must be non-negative", s.L2)
	case s.IDDropout < 0 || s.IDDropout >= 1 || math.IsNaN(s.IDDropout):
		return fmt.Errorf("settings: id dropout %v must be in [0,1)", s.IDDropout)
	case s.TaskDropout < 0 || s.TaskDropout > 1 || math.IsNaN(s.TaskDropout):
		return fmt.Errorf("settings: task dropout %v must be in [0,1]", s.TaskDropout)
	case s.Patience < 1:
		return fmt.Errorf("settings: patience %d must be positive", s.Patience)
	case s.TuneFolds < 0:
		return fmt.Errorf("settings: tune folds %d must not be negative", s.TuneFolds)
	case s.TuneFolds != 1 && (s.LinearEpochs < 1 || !(s.LinearRate > 0) || s.LinearL2 < 0 || math.IsNaN(s.LinearL2)):
		return fmt.Errorf("settings: linear path epochs %d, rate %v and l2 %v: want epochs ≥ 1, rate > 0, l2 ≥ 0", s.LinearEpochs, s.LinearRate, s.LinearL2)
	}
	return s.Optimizer.validate()
}

// Objective is a per-output loss on the predicted quality p of a model with
// observed quality y and example weight w.
type Objective interface {
	// Loss is the weighted loss of one output.
	Loss(p, y, w float32) float64
	// GradLogit is the derivative of Loss with respect to the output's logit.
	GradLogit(p, y, w float32) float32
}

// WeightedBCE is binary cross-entropy weighted per example and model: the
// weight is 1 for full-information data and an inverse propensity for
// bandit feedback. Labels in [0,1] are allowed (soft labels).
type WeightedBCE struct{}

// Loss implements Objective.
func (WeightedBCE) Loss(p, y, w float32) float64 {
	const eps = 1e-7
	pp := math.Min(math.Max(float64(p), eps), 1-eps)
	return -float64(w) * (float64(y)*math.Log(pp) + (1-float64(y))*math.Log(1-pp))
}

// GradLogit implements Objective.
func (WeightedBCE) GradLogit(p, y, w float32) float32 { return w * (p - y) }

// Progress receives one call per finished epoch.
type Progress interface {
	Epoch(epoch, epochs int, trainLoss, valLoss float64, improved bool)
}

// Result is what a training run reports besides the model.
type Result struct {
	Epochs       int                           // epochs run
	BestEpoch    int                           // epoch whose weights were kept
	TrainLoss    float64                       // at the best epoch
	ValLoss      float64                       // of the returned model (after blend and calibration)
	PriorValLoss float64                       // validation loss of the per-task prior alone (epoch 0)
	Blend        *Blend                        // the blend of network and linear path chosen by tuning; nil: the network alone
	Validation   map[string]classifier.Metrics // per model, on the validation examples
	Duration     time.Duration
	Examples     int     // training examples
	PerSecond    float64 // training examples per second of the network's epochs
}

// Trainer fits a classifier.Model. It is configured, not stateful: Train may
// be called many times.
type Trainer struct {
	Settings  Settings
	Objective Objective
	// Costs are the expected cost of a request to each model, in output
	// order: the prices the blend is judged at. Without them Train uses the
	// network alone; Fit derives them from the outcomes when nil.
	Costs    []float64
	Progress Progress     // may be nil
	Log      *slog.Logger // may be nil
}

// Train fits a model for the named models on train, early-stopping on val
// (which may be empty: then it runs all epochs and reports no metrics). With
// Settings.TuneFolds other than 1, Costs that differ between models and at
// least 100 full-information training examples (every model observed), it
// also fits the sparse linear path, blends it with the network by
// out-of-fold routing AIQ (see Blend) and calibrates on the out-of-fold
// predictions; otherwise the network is used alone and calibrated on val.
func (t *Trainer) Train(ctx context.Context, spec features.Spec, models []string, train, val []Example) (*classifier.Model, *Result, error) {
	s := t.Settings
	if err := s.validate(); err != nil {
		return nil, nil, err
	}
	if len(train) == 0 {
		return nil, nil, errors.New("train: no training examples")
	}
	for i, e := range append(train[:len(train):len(train)], val...) {
		if len(e.Labels) != len(models) || len(e.Weights) != len(models) {
			return nil, nil, fmt.Errorf("train: example %d (%s) has %d labels and %d weights for %d models",
				i, e.PromptID, len(e.Labels), len(e.Weights), len(models))
		}
	}
	if t.Costs != nil && len(t.Costs) != len(models) {
		return nil, nil, fmt.Errorf("train: %d costs for %d models", len(t.Costs), len(models))
	}
	start := time.Now()
	m, res, err := t.fitNetwork(ctx, spec, models, train, val, t.Progress)
	if err != nil {
		return nil, nil, err
	}
	calibrated := s.NoCalibration
	if s.TuneFolds != 1 && t.Costs != nil {
		b, oof, err := t.tuneBlend(ctx, spec, models, train, val)
		if err != nil {
			return nil, nil, err
		}
		if b != nil {
			var lp *linearPath
			if b.Linear != 0 {
				if lp, err = fitLinearPath(ctx, m, train, s); err != nil {
					return nil, nil, err
				}
			}
			applyBlend(m, lp, b)
			res.Blend = b
			if !calibrated {
				plattOnOutOfFold(m, oof, b)
				calibrated = true
			}
			if t.Log != nil {
				t.Log.Info("blend", "network", b.Network, "linear", b.Linear, "out_of_fold_aiq", b.Chosen(), "examples", b.Examples)
			}
		}
	}
	if len(val) > 0 && !calibrated {
		plattOnValidation(m, val)
	}
	res.Duration = time.Since(start)
	if len(val) > 0 {
		obj := t.Objective
		if obj == nil {
			obj = WeightedBCE{}
		}
		res.ValLoss = Loss(m, obj, val) // of the model returned: blended and calibrated
		res.Validation = ValidationMetrics(m, val)
	}
	m.Meta.Validation = res.Validation
	return m, res, nil
}

// fitNetwork trains the network on train with the per-task prior fixed,
// keeping the weights of the epoch with the lowest loss on val (all epochs
// when val is empty). The sparse path stays zero; nothing is calibrated.
func (t *Trainer) fitNetwork(ctx context.Context, spec features.Spec, models []string, train, val []Example, progress Progress) (*classifier.Model, *Result, error) {
	s := t.Settings
	obj := t.Objective
	if obj == nil {
		obj = WeightedBCE{}
	}
	m, err := classifier.NewModel(spec, models, s.EmbeddingDim, s.Hidden)
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewSource(s.Seed))
	m.Init(rng)
	SetTaskPrior(m, train, s.PriorStrength)
	// the sparse path stays out of the network's training (Forward skips a
	// nil one); it is fitted on its own and blended afterwards
	sparse := m.Sparse
	m.Sparse = nil
	defer func() { m.Sparse = sparse }()
	st := newState(m, s)
	best := cloneWeights(m)
	res := &Result{Examples: len(train), BestEpoch: 0, ValLoss: math.Inf(1)}
	if len(val) > 0 { // epoch 0: the prior alone, which training must beat
		res.ValLoss = Loss(m, obj, val)
		res.TrainLoss = Loss(m, obj, train)
		res.PriorValLoss = res.ValLoss
	}
	order := indices(len(train))
	start := time.Now()
	es := &earlyStop{best: best, epochs: s.Epochs, patience: s.Patience, progress: progress, log: t.Log}
	for epoch := 1; epoch <= s.Epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var lossSum, wSum float64
		for b := 0; b < len(order); b += s.BatchSize {
			l, w := st.step(obj, train, order[b:min(b+s.BatchSize, len(order))], rng)
			lossSum += l
			wSum += w
		}
		if es.end(res, m, obj, val, epoch, lossSum/math.Max(wSum, 1e-12)) {
			break
		}
	}
	copyWeights(m, best)
	res.PerSecond = float64(res.Epochs*len(train)) / time.Since(start).Seconds()
	return m, res, nil
}

// earlyStop ends the epochs of a training run: it keeps the weights of the
// epoch with the lowest validation loss in best and stops after patience
// epochs without improvement (never without validation examples).
type earlyStop struct {
	best             *classifier.Model
	epochs, patience int
	stale            int
	progress         Progress     // may be nil
	log              *slog.Logger // may be nil
}

// end records an epoch's training loss in res, judges m on val and reports
// whether training stops.
func (es *earlyStop) end(res *Result, m *classifier.Model, obj Objective, val []Example, epoch int, trainLoss float64) bool {
	res.Epochs = epoch
	valLoss := trainLoss
	if len(val) > 0 {
		valLoss = Loss(m, obj, val)
	}
	improved := valLoss < res.ValLoss-1e-6
	if improved {
		res.ValLoss, res.TrainLoss, res.BestEpoch = valLoss, trainLoss, epoch
		copyWeights(es.best, m)
		es.stale = 0
	} else {
		es.stale++
	}
	if es.progress != nil {
		es.progress.Epoch(epoch, es.epochs, trainLoss, valLoss, improved)
	}
	if es.log != nil && es.progress != nil {
		es.log.Debug("epoch", "epoch", epoch, "train_loss", trainLoss, "val_loss", valLoss)
	}
	return len(val) > 0 && es.stale >= es.patience
}

// Loss is the mean weighted loss of m on examples.
func Loss(m *classifier.Model, obj Objective, ex []Example) float64 {
	var a classifier.Activations
	var sum, w float64
	for i := range ex {
		m.Forward(&ex[i].Vec, &a)
		for j, p := range a.Out {
			if ex[i].Weights[j] > 0 {
				sum += obj.Loss(p, ex[i].Labels[j], ex[i].Weights[j])
				w += float64(ex[i].Weights[j])
			}
		}
	}
	if w == 0 {
		return 0
	}
	return sum / w
}

func cloneWeights(m *classifier.Model) *classifier.Model {
	c := *m
	c.Emb = append([]float32(nil), m.Emb...)
	c.W1 = append([]float32(nil), m.W1...)
	c.B1 = append([]float32(nil), m.B1...)
	c.W2 = append([]float32(nil), m.W2...)
	c.B2 = append([]float32(nil), m.B2...)
	c.Ws = append([]float32(nil), m.Ws...)
	c.Prior = append([]float32(nil), m.Prior...)
	c.Sparse = append([]float32(nil), m.Sparse...)
	return &c
}

func copyWeights(dst, src *classifier.Model) {
	copy(dst.Emb, src.Emb)
	copy(dst.W1, src.W1)
	copy(dst.B1, src.B1)
	copy(dst.W2, src.W2)
	copy(dst.B2, src.B2)
	copy(dst.Ws, src.Ws)
	copy(dst.Prior, src.Prior)
	copy(dst.Sparse, src.Sparse)
}

// SetTaskPrior fills m's per-task prior logits from the training examples:
// for each task-label id and model, the logit of the weighted mean quality,
// shrunk toward the model's overall mean by strength pseudo-observations.
// Rows of labels never seen (and row 0, no label) get the overall mean.
func SetTaskPrior(m *classifier.Model, ex []Example, strength float64) {
	p := newPriorSums(len(m.Meta.Models))
	for i := range ex {
		for j, w := range ex[i].Weights {
			if w > 0 {
				p.add(ex[i].Vec.TaskID, j, float64(ex[i].Labels[j]), float64(w))
			}
		}
	}
	p.set(m, strength)
}

// priorSums are the weighted quality sums per task-label id and model that
// the per-task prior is set from.
type priorSums struct {
	nout       int
	byTask     map[int32]*[2][]float64 // sum of w·y, sum of w
	global, gw []float64               // the same over all tasks
}

func newPriorSums(nout int) *priorSums {
	return &priorSums{nout: nout, byTask: map[int32]*[2][]float64{}, global: make([]float64, nout), gw: make([]float64, nout)}
}

// add adds the observation of model j with quality y at weight w on a
// prompt of task id t.
func (p *priorSums) add(t int32, j int, y, w float64) { p.addSums(t, j, w*y, w) }

// addSums adds observations of model j on prompts of task id t whose
// weighted qualities sum to wy and weights to w.
func (p *priorSums) addSums(t int32, j int, wy, w float64) {
	a := p.byTask[t]
	if a == nil {
		a = &[2][]float64{make([]float64, p.nout), make([]float64, p.nout)}
		p.byTask[t] = a
	}
	a[0][j] += wy
	a[1][j] += w
	p.global[j] += wy
	p.gw[j] += w
}

// set fills m's prior from the sums (see SetTaskPrior).
func (p *priorSums) set(m *classifier.Model, strength float64) {
	nout := p.nout
	global, gw := slices.Clone(p.global), p.gw
	logit := func(p float64) float32 {
		p = math.Min(math.Max(p, 1e-3), 1-1e-3)
		return float32(math.Log(p / (1 - p)))
	}
	g := make([]float32, nout)
	for j := range g {
		mean := 0.5
		if gw[j] > 0 {
			mean = global[j] / gw[j]
		}
		global[j] = mean
		g[j] = logit(mean)
	}
	for r := 0; r < len(m.Prior)/nout; r++ {
		copy(m.Prior[r*nout:r*nout+nout], g)
	}
	for t, a := range p.byTask {
		if t == 0 {
			continue
		}
		for j := 0; j < nout; j++ {
			m.Prior[int(t)*nout+j] = logit((a[0][j] + strength*global[j]) / (a[1][j] + strength))
		}
	}
}
