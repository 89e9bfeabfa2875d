package training

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/datasets/table"
	"switchyard/features"
)

// TableJob trains from training tables (datasets/table) in bounded memory:
// the tables are read a row group at a time, featurised on the fly by
// Workers goroutines while the optimiser runs, and shuffled within a
// buffer of Settings.Buffer examples (row groups are taken in an order
// drawn from the seed each epoch, see order.go), so memory holds the
// model, the buffer and the validation sample, whatever the number of rows. The same tables and
// settings give the same model with any number of workers.
type TableJob struct {
	Tables    []string // training table files
	Models    []string // pool, in output order; empty: every catalogue model with outcomes in the tables
	Catalogue *datasets.Catalogue
	Spec      features.Spec
	// ValidationShare of the prompts (by a hash of the prompt key with
	// SplitSalt, as Split) is held out; of them, the MaxValidation with the
	// smallest hashes are kept in memory for early stopping, calibration
	// and metrics (0: 100,000).
	ValidationShare float64
	SplitSalt       string
	MaxValidation   int
	Workers         int // featurising goroutines; 0: one per core
	// Cache featurises the training rows once and holds the examples in
	// memory for every epoch, taken in the same order: the same model as
	// streaming, without reading and featurising the tables each epoch,
	// but memory grows with the rows.
	Cache    bool
	Init     *classifier.Model // warm start from this predictor's weights (same feature spec); nil: random
	Now      func() time.Time
	Progress ExampleProgress // may be nil
	Stats    LogStats        // filled by FitTable
}

// ExampleProgress receives the training examples done so far of total
// (all epochs; early stopping ends before total).
type ExampleProgress interface {
	Examples(done, total int)
}

// FitTable trains the network from job.Tables in bounded memory, keeping
// the weights of the epoch with the lowest validation loss, calibrates it
// on the validation sample and fills its metadata as Fit does. The sparse
// linear path and the blend (which need several trainings on examples held
// in memory) are left out: the network is used alone.
func (t *Trainer) FitTable(ctx context.Context, job *TableJob) (*classifier.Model, *Result, error) {
	s := t.Settings
	if err := s.validate(); err != nil {
		return nil, nil, err
	}
	if len(job.Tables) == 0 {
		return nil, nil, errors.New("fit table: no training table")
	}
	if job.Catalogue == nil {
		return nil, nil, errors.New("fit table: no catalogue")
	}
	if !(job.ValidationShare > 0 && job.ValidationShare < 1) {
		return nil, nil, fmt.Errorf("fit table: validation share %v must be in (0,1)", job.ValidationShare)
	}
	if job.MaxValidation <= 0 {
		job.MaxValidation = 100_000
	}
	if job.Workers <= 0 {
		job.Workers = runtime.GOMAXPROCS(0)
	}
	ext, err := features.NewExtractor(job.Spec)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	sv, err := surveyTables(ctx, job, ext)
	if err != nil {
		return nil, nil, err
	}
	models := job.Models
	if len(models) == 0 {
		for _, m := range job.Catalogue.Models { // catalogue order
			if sv.models[m.Name] != nil {
				models = append(models, m.Name)
			}
		}
	}
	for _, m := range models {
		if _, ok := job.Catalogue.Lookup(m); !ok {
			return nil, nil, fmt.Errorf("fit table: model %q is not in the catalogue", m)
		}
	}
	if len(models) == 0 {
		return nil, nil, errors.New("fit table: no outcomes of any catalogue model in the tables")
	}
	sc := newScorer(models, sv)
	job.Stats = sc.stats(sv)
	sv.val = slices.DeleteFunc(sv.val, func(v valRow) bool { _, ok := sc.col[v.row.Model]; return !ok })
	if sc.trainRows == 0 {
		return nil, nil, fmt.Errorf("fit table: no training examples for models %v (%d rows read, %d in the validation split)", models, sv.rows, len(sv.val))
	}
	val := make([]Example, len(sv.val))
	if err := parallel(ctx, job.Workers, len(sv.val), func(i int) error {
		return sc.example(ext, &sv.val[i].row, &val[i])
	}); err != nil {
		return nil, nil, err
	}
	sv.val = nil

	m, err := classifier.NewModel(job.Spec, models, s.EmbeddingDim, s.Hidden)
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewSource(s.Seed))
	m.Init(rng)
	if job.Init != nil {
		if err := warmStart(m, job.Init); err != nil {
			return nil, nil, err
		}
	}
	sc.prior.set(m, s.PriorStrength)
	res, err := t.streamNetwork(ctx, m, job, ext, sc, val)
	if err != nil {
		return nil, nil, err
	}
	obj := t.Objective
	if obj == nil {
		obj = WeightedBCE{}
	}
	if !s.NoCalibration && len(val) > 0 {
		plattOnValidation(m, val)
	}
	if len(val) > 0 {
		res.ValLoss = Loss(m, obj, val)
		res.Validation = ValidationMetrics(m, val)
	}
	res.Duration = time.Since(start)
	now := time.Now
	if job.Now != nil {
		now = job.Now
	}
	m.Meta.Validation = res.Validation
	m.Meta.OutputTokens = sc.tokenMeans()
	m.Meta.Observations = sc.observations()
	m.Meta.ObservedUntil = job.Stats.Newest
	m.Meta.DataFingerprint = sv.fingerprint()
	m.Meta.CreatedAt = now().UTC().Truncate(time.Second)
	m.Meta.Version = m.Fingerprint()
	return m, res, nil
}

// streamNetwork runs the epochs over the tables, early-stopping on val.
func (t *Trainer) streamNetwork(ctx context.Context, m *classifier.Model, job *TableJob, ext *features.Extractor, sc *scorer, val []Example) (*Result, error) {
	s := t.Settings
	obj := t.Objective
	if obj == nil {
		obj = WeightedBCE{}
	}
	sparse := m.Sparse
	m.Sparse = nil
	defer func() { m.Sparse = sparse }()
	st := newState(m, s)
	best := cloneWeights(m)
	res := &Result{Examples: sc.trainRows, ValLoss: math.Inf(1)}
	if len(val) > 0 {
		res.ValLoss = Loss(m, obj, val)
		res.PriorValLoss = res.ValLoss
	}
	units, err := rowGroups(job.Tables)
	if err != nil {
		return nil, err
	}
	// with Cache, the training examples of each row group, featurised once
	var cache [][]Example
	if job.Cache {
		cache = make([][]Example, len(units))
		if err := streamExamples(ctx, units, job.Workers, ext, sc, func(u int, e *Example) {
			cache[u] = append(cache[u], *e)
		}); err != nil {
			return nil, err
		}
	}
	total := s.Epochs * sc.trainRows
	done := 0
	start := time.Now()
	es := &earlyStop{best: best, epochs: s.Epochs, patience: s.Patience, progress: t.Progress, log: t.Log}
	for epoch := 1; epoch <= s.Epochs; epoch++ {
		rng := epochRand(s.Seed, epoch)
		var lossSum, wSum float64
		f := newFeeder(rng, s.Buffer, s.BatchSize, func(batch []Example, idx []int) {
			l, w := st.step(obj, batch, idx, rng)
			lossSum += l
			wSum += w
			done += len(batch)
			if cache == nil {
				for i := range batch {
					sc.release(&batch[i])
				}
			}
			if job.Progress != nil {
				job.Progress.Examples(done, total)
			}
		})
		if cache != nil {
			// the same draws as shuffling the row groups themselves
			for _, u := range shuffled(rng, indices(len(units))) {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("train: %w", err)
				}
				for i := range cache[u] {
					f.add(&cache[u][i])
				}
			}
		} else if err := streamExamples(ctx, shuffled(rng, units), job.Workers, ext, sc, func(_ int, e *Example) { f.add(e) }); err != nil {
			return nil, err
		}
		f.finish()
		if es.end(res, m, obj, val, epoch, lossSum/math.Max(wSum, 1e-12)) {
			break
		}
	}
	copyWeights(m, best)
	res.PerSecond = float64(done) / time.Since(start).Seconds()
	return res, nil
}

// unit is one row group of a table file.
type unit struct {
	file        string
	first, rows int64
}

// rowGroups lists the row groups of the tables, checking each table's
// version and schema.
func rowGroups(tables []string) ([]unit, error) {
	var out []unit
	for _, path := range tables {
		r, err := table.NewReader(path)
		if err != nil {
			return nil, err
		}
		var first int64
		for _, rg := range r.File().RowGroups() {
			out = append(out, unit{file: path, first: first, rows: rg.NumRows()})
			first += rg.NumRows()
		}
		r.Close()
	}
	return out, nil
}

// chunk is a run of consecutive table rows, numbered in reading order.
type chunk struct {
	seq  int
	unit int // its row group's index in the order read
	rows []table.Row
	ex   []Example
}

// streamExamples reads the row groups in order, featurises their training
// rows on workers goroutines and calls fn with each example in reading
// order and the index of its row group in order (fn must copy what it
// keeps; the example's slices become fn's).
func streamExamples(ctx context.Context, order []unit, workers int, ext *features.Extractor, sc *scorer, fn func(u int, e *Example)) error {
	g, ctx := errgroup.WithContext(ctx)
	todo := make(chan *chunk, 2*workers)
	done := make(chan *chunk, 2*workers)
	g.Go(func() error {
		defer close(todo)
		return readUnits(ctx, order, func(c *chunk) error {
			select {
			case todo <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for c := range todo {
				for i := range c.rows {
					r := &c.rows[i]
					if !sc.trains(r) {
						continue
					}
					var e Example
					sc.take(&e)
					if err := sc.example(ext, r, &e); err != nil {
						return err
					}
					c.ex = append(c.ex, e)
				}
				c.rows = nil
				select {
				case done <- c:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	go func() { wg.Wait(); close(done) }()
	g.Go(func() error {
		next := 0
		waiting := map[int]*chunk{}
		for c := range done {
			waiting[c.seq] = c
			for {
				c, ok := waiting[next]
				if !ok {
					break
				}
				delete(waiting, next)
				next++
				for i := range c.ex {
					fn(c.unit, &c.ex[i])
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// readUnits reads the row groups in order, in chunks of up to 1,024 rows.
func readUnits(ctx context.Context, order []unit, send func(*chunk) error) error {
	seq := 0
	var open string
	var r *table.Reader
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	for ui, u := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		if u.file != open {
			if r != nil {
				r.Close()
			}
			var err error
			if r, err = table.NewReader(u.file); err != nil {
				return err
			}
			open = u.file
		}
		if err := r.SeekToRow(u.first); err != nil {
			return err
		}
		for left := u.rows; left > 0; {
			rows := make([]table.Row, min(left, 1024))
			n, err := r.Read(rows)
			if n == 0 {
				if err == nil || errors.Is(err, io.EOF) {
					err = fmt.Errorf("training table %s: row group at row %d ends %d rows early", u.file, u.first, left)
				}
				return err
			}
			left -= int64(n)
			if err := send(&chunk{seq: seq, unit: ui, rows: rows[:n]}); err != nil {
				return err
			}
			seq++
		}
	}
	return nil
}

// survey is what a first pass over the tables learns: the rows per model,
// the raw weights, the sums of the prior and the output tokens, the
// validation sample and a fingerprint of the data.
type survey struct {
	salt     string
	share    float64
	max      int
	rows     int
	models   map[string]*modelSums
	noPrompt int
	val      valHeap
	fp       [4]uint64 // sums of the rows' hashes: the same in any order
}

// modelSums are one model's sums over the rows of the tables.
type modelSums struct {
	chosen, shadow       int     // rows where it was served, shadow outcomes
	chosenTrain          int     // of them, in the training split with a prompt
	weight               float64 // raw weights of the rows where it was served, with a prompt
	weighted             int     // those rows
	tokens, tokensN      float64 // output tokens over outcomes that report them
	prior                map[int32]*[4]float64
	newestChosen, newest time.Time
}

func surveyTables(ctx context.Context, job *TableJob, ext *features.Extractor) (*survey, error) {
	sv := &survey{salt: job.SplitSalt, share: job.ValidationShare, max: job.MaxValidation, models: map[string]*modelSums{}}
	for _, path := range job.Tables {
		err := table.Each(path, func(rows []table.Row) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			for i := range rows {
				if err := sv.add(&rows[i], ext); err != nil {
					return fmt.Errorf("training table %s: %w", path, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(sv.val, func(a, b valRow) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), strings.Compare(a.row.DecisionID, b.row.DecisionID))
	})
	return sv, nil
}

func (sv *survey) model(name string) *modelSums {
	ms := sv.models[name]
	if ms == nil {
		ms = &modelSums{prior: map[int32]*[4]float64{}}
		sv.models[name] = ms
	}
	return ms
}

func (sv *survey) add(r *table.Row, ext *features.Extractor) error {
	if math.IsNaN(r.Quality) || r.Quality < 0 || r.Quality > 1 {
		return fmt.Errorf("decision %s: quality %v outside [0,1]", r.DecisionID, r.Quality)
	}
	if !(r.Weight >= 1) || math.IsInf(r.Weight, 0) {
		return fmt.Errorf("decision %s: weight %v must be at least 1 (the inverse of a propensity, clipped)", r.DecisionID, r.Weight)
	}
	for _, s := range r.Shadows {
		if math.IsNaN(s.Quality) || s.Quality < 0 || s.Quality > 1 {
			return fmt.Errorf("decision %s: shadow outcome of %s: quality %v outside [0,1]", r.DecisionID, s.Model, s.Quality)
		}
	}
	sv.rows++
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%v\x00%v", r.DecisionID, r.PromptKey, r.Model, r.Quality, r.Weight)
	for _, s := range r.Shadows {
		fmt.Fprintf(h, "\x00%s\x00%v", s.Model, s.Quality)
	}
	sum := h.Sum(nil)
	for k := range sv.fp {
		sv.fp[k] += binary.LittleEndian.Uint64(sum[8*k:])
	}
	ms := sv.model(r.Model)
	ms.chosen++
	ms.outcome(r.OutputTokens)
	if r.Prompt == "" {
		sv.noPrompt++
		return nil
	}
	ms.weight += r.Weight
	ms.weighted++
	ms.newestChosen = latest(ms.newestChosen, r.OutcomeTime)
	for _, s := range r.Shadows {
		if s.Model != r.Model {
			sm := sv.model(s.Model)
			sm.shadow++
			sm.outcome(s.OutputTokens)
			sm.newest = latest(sm.newest, s.Time)
		}
	}
	if InHoldout(r.PromptKey, sv.salt, sv.share) {
		sv.keep(datasets.SaltedHash(sv.salt, r.PromptKey), r)
		return nil
	}
	ms.chosenTrain++
	task := ext.TaskID(r.Task)
	ms.priorOf(task)[0] += r.Weight * r.Quality
	ms.priorOf(task)[1] += r.Weight
	for _, s := range r.Shadows {
		if s.Model != r.Model {
			p := sv.model(s.Model).priorOf(task)
			p[2] += s.Quality
			p[3]++
		}
	}
	return nil
}

// priorOf is the model's prior sums on prompts of task id t: served
// (sum of raw w·y, of raw w: divided by the mean weight later), shadow
// (sum of y, count).
func (ms *modelSums) priorOf(t int32) *[4]float64 {
	p := ms.prior[t]
	if p == nil {
		p = new([4]float64)
		ms.prior[t] = p
	}
	return p
}

func (ms *modelSums) outcome(out int64) {
	if out > 0 {
		ms.tokens, ms.tokensN = ms.tokens+float64(out), ms.tokensN+1
	}
}

// keep keeps a validation row when its hash is among the smallest max.
func (sv *survey) keep(hash uint64, r *table.Row) {
	v := valRow{hash: hash}
	if len(sv.val) == sv.max {
		top := sv.val[0]
		if hash > top.hash || hash == top.hash && r.DecisionID >= top.row.DecisionID {
			return
		}
		heap.Pop(&sv.val)
	}
	v.row = *r
	v.row.Shadows = slices.Clone(r.Shadows)
	heap.Push(&sv.val, v)
}

func (sv *survey) fingerprint() string {
	var b [32]byte
	for k, x := range sv.fp {
		binary.LittleEndian.PutUint64(b[8*k:], x)
	}
	s := sha256.Sum256(b[:])
	return "t-" + hex.EncodeToString(s[:8])
}

type valRow struct {
	hash uint64
	row  table.Row
}

// valHeap is a max-heap by (hash, decision id): its top is the row to
// drop first.
type valHeap []valRow

func (h valHeap) Len() int { return len(h) }
func (h valHeap) Less(i, j int) bool {
	return h[i].hash > h[j].hash || h[i].hash == h[j].hash && h[i].row.DecisionID > h[j].row.DecisionID
}
func (h valHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *valHeap) Push(x any)   { *h = append(*h, x.(valRow)) }
func (h *valHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// scorer turns table rows into examples for a pool of models: the served
// model at its weight divided by the mean weight of the pool's rows, each
// shadow model at weight 1. Examples' slices are recycled.
type scorer struct {
	col       map[string]int
	models    []string
	mean      float64
	salt      string
	share     float64
	trainRows int
	prior     *priorSums
	sv        *survey
	pool      sync.Pool
}

func newScorer(models []string, sv *survey) *scorer {
	sc := &scorer{col: map[string]int{}, models: models, salt: sv.salt, share: sv.share, sv: sv, prior: newPriorSums(len(models))}
	var w float64
	var n int
	for j, m := range models {
		sc.col[m] = j
		if ms := sv.models[m]; ms != nil {
			w += ms.weight
			n += ms.weighted
			sc.trainRows += ms.chosenTrain
		}
	}
	sc.mean = 1
	if n > 0 {
		sc.mean = w / float64(n)
	}
	// the prior's sums in the order the tasks are numbered, so that the
	// same tables give the same prior
	for j, m := range models {
		ms := sv.models[m]
		if ms == nil {
			continue
		}
		tasks := make([]int32, 0, len(ms.prior))
		for t := range ms.prior {
			tasks = append(tasks, t)
		}
		slices.Sort(tasks)
		for _, t := range tasks {
			a := ms.prior[t]
			sc.prior.addSums(t, j, a[0]/sc.mean+a[2], a[1]/sc.mean+a[3])
		}
	}
	return sc
}

func (sc *scorer) stats(sv *survey) LogStats {
	st := LogStats{Decisions: sv.rows, NoPrompt: sv.noPrompt, MeanWeight: sc.mean}
	for name, ms := range sv.models {
		if _, ok := sc.col[name]; !ok {
			st.OtherModels += ms.chosen
			continue
		}
		st.Used += ms.weighted
		st.Shadow += ms.shadow
		st.Newest = latest(latest(st.Newest, ms.newestChosen), ms.newest)
	}
	return st
}

// trains reports whether a row is a training example of the pool.
func (sc *scorer) trains(r *table.Row) bool {
	if _, ok := sc.col[r.Model]; !ok || r.Prompt == "" {
		return false
	}
	return !InHoldout(r.PromptKey, sc.salt, sc.share)
}

// take gives e recycled slices.
func (sc *scorer) take(e *Example) {
	if x, ok := sc.pool.Get().(*Example); ok {
		*e = *x
	}
}

// release recycles e's slices.
func (sc *scorer) release(e *Example) {
	x := *e
	sc.pool.Put(&x)
}

// example fills e from a row whose model is in the pool.
func (sc *scorer) example(ext *features.Extractor, r *table.Row, e *Example) error {
	j, ok := sc.col[r.Model]
	if !ok {
		return fmt.Errorf("training table: decision %s: model %q is not in the pool", r.DecisionID, r.Model)
	}
	n := len(sc.models)
	e.PromptID = r.PromptKey
	e.Labels = grow(e.Labels, n)
	e.Weights = grow(e.Weights, n)
	clear(e.Labels)
	clear(e.Weights)
	ext.Extract(features.Input{Prompt: r.Prompt, Task: r.Task}, &e.Vec)
	e.Labels[j], e.Weights[j] = float32(r.Quality), float32(r.Weight/sc.mean)
	for _, s := range r.Shadows {
		if k, ok := sc.col[s.Model]; ok && k != j {
			e.Labels[k], e.Weights[k] = float32(s.Quality), 1
		}
	}
	return nil
}

func (sc *scorer) tokenMeans() map[string]float64 {
	out := map[string]float64{}
	for _, m := range sc.models {
		if ms := sc.sv.models[m]; ms != nil && ms.tokensN > 0 {
			out[m] = ms.tokens / ms.tokensN
		}
	}
	return out
}

func (sc *scorer) observations() map[string]int {
	out := map[string]int{}
	for _, m := range sc.models {
		if ms := sc.sv.models[m]; ms != nil {
			out[m] = ms.weighted + ms.shadow
		}
	}
	return out
}

// parallel calls fn(i) for i in [0, n) on workers goroutines.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	per := max(1, n/(workers*4))
	for lo := 0; lo < n; lo += per {
		hi := min(n, lo+per)
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// warmStart copies the weights of prev into m: the embeddings and the
// hidden layer whole, and the output layer's column of each model both
// have (a model new to the pool keeps its fresh initialisation, a model
// no longer in it is dropped). The feature spec and the layer widths must
// match.
func warmStart(m, prev *classifier.Model) error {
	switch {
	case prev.Meta.FeatureSpecID != m.Meta.FeatureSpecID:
		return fmt.Errorf("warm start: the predictor's feature spec %s is not the one trained (%s)", prev.Meta.FeatureSpecID, m.Meta.FeatureSpecID)
	case len(prev.Emb) != len(m.Emb) || len(prev.W1) != len(m.W1) || len(prev.B1) != len(m.B1):
		return fmt.Errorf("warm start: the predictor's layers (embedding %d, hidden %d weights) differ from the settings' (%d, %d)",
			len(prev.Emb), len(prev.W1), len(m.Emb), len(m.W1))
	}
	copy(m.Emb, prev.Emb)
	copy(m.W1, prev.W1)
	copy(m.B1, prev.B1)
	pn, nout := len(prev.Meta.Models), len(m.Meta.Models)
	hid := len(m.B1)
	in := len(m.W1) / hid
	for j, name := range m.Meta.Models {
		k := slices.Index(prev.Meta.Models, name)
		if k < 0 {
			continue
		}
		m.B2[j] = prev.B2[k]
		for r := range hid {
			m.W2[r*nout+j] = prev.W2[r*pn+k]
		}
		for r := range in {
			m.Ws[r*nout+j] = prev.Ws[r*pn+k]
		}
	}
	return nil
}
