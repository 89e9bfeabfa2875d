package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/datasets/table"
	"switchyard/training"
)

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	data := fs.String("data", "", "dataset folder (from generate or import): full-information outcomes, weight 1")
	logs := fs.String("logs", "", "logs of a server or fleet, a folder or a bucket URL (s3://, gs://, azblob://, file://): decisions joined with their outcomes, weighted by inverse propensity")
	tablePath := fs.String("table", "", "training tables, comma-separated files or folders of them (from switchyard join, or another engine running its SQL): examples weighted by inverse propensity")
	catPath := fs.String("catalogue", "", "model catalogue (needed with --logs or --table alone)")
	clip := fs.Float64("clip", 20, "largest inverse-propensity weight of a logged decision")
	out := fs.String("out", "", "output folder for predictor.onnx and manifest.json")
	models := fs.String("models", "", "comma-separated pool of models, in output order (default: every model with outcomes)")
	lf := registerLearnFlags(fs)
	valShare := fs.Float64("val-share", 0.1, "share of prompts held out for validation (split by a hash of the prompt id)")
	jf := registerJoinFlags(fs)
	initPath := fs.String("init", "", "warm start from this predictor (its predictor.onnx, or the folder holding it): same feature spec; models new to the pool get new outputs")
	buffer := fs.Int("buffer", 1<<16, "with --logs or --table alone: examples in the shuffle buffer")
	cache := fs.Bool("cache", false, "with --logs or --table alone: featurise the training rows once and hold them in memory for every epoch (the streamed model, in the same order, without reading the table each epoch; memory grows with the rows)")
	workers := fs.Int("workers", 0, "with --logs or --table alone: featurising goroutines (0: one per core)")
	maxVal := fs.Int("max-validation", 100_000, "with --logs or --table alone: validation examples kept in memory (those of the smallest prompt hashes)")
	inMemory := fs.Bool("in-memory", false, "read the logs or tables into memory and train there, as with --data (the blend with the sparse linear path included); by default logs and tables alone are streamed in bounded memory")
	if err := parse(fs, args, "out"); err != nil {
		return err
	}
	if *data == "" && !*inMemory && (*logs != "" || *tablePath != "") {
		return trainAtScale(ctx, trainRun{logs: *logs, tables: *tablePath, catalogue: *catPath, clip: *clip, out: *out,
			models: splitList(*models), valShare: *valShare, init: *initPath, buffer: *buffer, cache: *cache, workers: *workers, maxVal: *maxVal,
			join: jf, learn: lf}, stdout, stderr)
	}
	if *jf.since != "" || *jf.until != "" || *initPath != "" {
		return fmt.Errorf("train: --since, --until and --init train from logs or tables alone, streamed (without --data or --in-memory)")
	}
	if *data == "" && *logs == "" && *tablePath == "" {
		return fmt.Errorf("train: give --data DIR, --logs DIR, --table FILE or several")
	}
	if *valShare <= 0 || *valShare >= 1 {
		return fmt.Errorf("train: --val-share must be in (0,1), got %v", *valShare)
	}
	start := time.Now()
	var ds *datasets.Dataset
	job := training.Job{Models: splitList(*models), ValidationShare: *valShare, SplitSalt: "validation"}
	if *data != "" {
		var err error
		if ds, err = datasets.ReadDataset(*data); err != nil {
			return err
		}
	}
	if *logs != "" {
		decisions, outcomes, err := readLogs(ctx, *logs)
		if err != nil {
			return err
		}
		job.Logs = &training.Logs{Decisions: decisions, Outcomes: outcomes, Clip: *clip}
		if ds == nil {
			if *catPath == "" {
				return fmt.Errorf("train: --logs without --data needs --catalogue")
			}
			if job.Catalogue, err = datasets.ReadCatalogue(*catPath); err != nil {
				return err
			}
		}
	}
	if *tablePath != "" {
		files, err := tableFiles(*tablePath)
		if err != nil {
			return err
		}
		var rows []table.Row
		for _, f := range files {
			r, err := table.Read(f)
			if err != nil {
				return err
			}
			rows = append(rows, r...)
		}
		job.Table = &training.Table{Rows: rows}
		if ds == nil && job.Catalogue == nil {
			if *catPath == "" {
				return fmt.Errorf("train: --table without --data needs --catalogue")
			}
			if job.Catalogue, err = datasets.ReadCatalogue(*catPath); err != nil {
				return err
			}
		}
	}
	s := lf.settings()
	spec := lf.spec()
	tr := &training.Trainer{Settings: s, Progress: newEpochProgress(stderr, s.Epochs)}
	job.Spec = spec
	m, res, err := tr.Fit(ctx, ds, job)
	if err != nil {
		return err
	}
	if l := job.Logs; l != nil {
		st := l.Stats
		fmt.Fprintf(stdout, "logs: %d decisions, %d used (weights clipped at %g: %d; mean raw weight %.2f, normalised to 1), %d shadow outcomes; skipped: %d without outcome, %d without prompt text, %d for models outside the pool; %d outcomes without decision\n",
			st.Decisions, st.Used, l.Clip, st.Clipped, st.MeanWeight, st.Shadow, st.NoOutcome, st.NoPrompt, st.OtherModels, st.OutcomesWithoutDecision)
		if err := st.Links().Err(); err != nil {
			fmt.Fprintln(stderr, "warning:", err)
		}
	}
	if tb := job.Table; tb != nil {
		st := tb.Stats
		fmt.Fprintf(stdout, "table: %d examples, %d used (mean weight %.2f, normalised to 1), %d shadow outcomes; skipped: %d without prompt text, %d for models outside the pool\n",
			st.Decisions, st.Used, st.MeanWeight, st.Shadow, st.NoPrompt, st.OtherModels)
	}
	return report(stdout, m, res, s, *out, start)
}

func totalN(res *training.Result) int {
	n := 0
	for _, v := range res.Validation {
		n = max(n, v.N)
	}
	return n
}

// epochProgress draws a progress bar over epochs when stderr is a terminal
// and prints one line per epoch otherwise.
type epochProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func newEpochProgress(w io.Writer, epochs int) *epochProgress {
	p := &epochProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(epochs, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *epochProgress) Epoch(epoch, epochs int, trainLoss, valLoss float64, improved bool) {
	mark := ""
	if improved {
		mark = " *"
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("epoch %d/%d train %.4f val %.4f%s", epoch, epochs, trainLoss, valLoss, mark))
		_ = p.bar.Add(1)
		return
	}
	fmt.Fprintf(p.w, "epoch %2d/%d  train loss %.4f  val loss %.4f%s\n", epoch, epochs, trainLoss, valLoss, mark)
}

// trainRun is a training run from logs or training tables alone.
type trainRun struct {
	logs, tables, catalogue string
	clip                    float64
	out                     string
	models                  []string
	valShare                float64
	init                    string
	buffer, workers, maxVal int
	cache                   bool
	join                    *joinFlags
	learn                   *learnFlags
}

// trainAtScale trains from logs (joined on the embedded engine into a
// training table first) and training tables, streaming them in bounded
// memory.
func trainAtScale(ctx context.Context, r trainRun, stdout, stderr io.Writer) error {
	start := time.Now()
	if r.valShare <= 0 || r.valShare >= 1 {
		return fmt.Errorf("train: --val-share must be in (0,1), got %v", r.valShare)
	}
	if r.catalogue == "" {
		return fmt.Errorf("train: --logs or --table without --data needs --catalogue")
	}
	cat, err := datasets.ReadCatalogue(r.catalogue)
	if err != nil {
		return err
	}
	tables, err := tableFiles(r.tables)
	if err != nil {
		return err
	}
	if r.logs != "" {
		tmp, err := os.MkdirTemp(*r.join.tempDir, "switchyard-train-")
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		defer os.RemoveAll(tmp)
		opt, err := r.join.options(ctx, r.logs, filepath.Join(tmp, "spill"))
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		opt.Clip = r.clip
		tbl := filepath.Join(tmp, "table.parquet")
		st, err := join.Logs(ctx, opt, tbl)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		for _, s := range st.Skipped {
			fmt.Fprintln(stderr, "skipped:", s)
		}
		fmt.Fprintf(stdout, "logs: %d examples joined from %d decision and %d outcome files (%d skipped) in %.1fs; %d outcomes without decision\n",
			st.Rows, st.DecisionFiles, st.OutcomeFiles, len(st.Skipped), time.Since(start).Seconds(), st.OutcomesWithoutDecision)
		links := datasets.OutcomeLinks{Linked: int(st.Outcomes), WithoutDecision: int(st.OutcomesWithoutDecision)}
		if err := links.Err(); err != nil {
			fmt.Fprintln(stderr, "warning:", err)
		}
		tables = append(tables, tbl)
	} else if *r.join.since != "" || *r.join.until != "" {
		return fmt.Errorf("train: --since and --until select logged decisions: give --logs")
	}
	s := r.learn.settings()
	s.Buffer = r.buffer
	job := &training.TableJob{Tables: tables, Models: r.models, Catalogue: cat, Spec: r.learn.spec(), ValidationShare: r.valShare,
		SplitSalt: "validation", MaxValidation: r.maxVal, Workers: r.workers, Cache: r.cache, Progress: newExampleProgress(stderr)}
	if r.init != "" {
		path := r.init
		if info, err := os.Stat(path); err == nil && info.IsDir() {
			path = filepath.Join(path, training.PredictorFile)
		}
		if job.Init, err = classifier.ReadONNX(path); err != nil {
			return fmt.Errorf("train: --init: %w", err)
		}
	}
	tr := &training.Trainer{Settings: s, Progress: newEpochProgress(stderr, s.Epochs)}
	m, res, err := tr.FitTable(ctx, job)
	if err != nil {
		return err
	}
	st := job.Stats
	fmt.Fprintf(stdout, "tables: %d examples, %d used (mean weight %.2f, normalised to 1), %d shadow outcomes; skipped: %d without prompt text, %d for models outside the pool\n",
		st.Decisions, st.Used, st.MeanWeight, st.Shadow, st.NoPrompt, st.OtherModels)
	return report(stdout, m, res, s, r.out, start)
}

// tableFiles lists the training tables named: files, or the .parquet
// files in folders.
func tableFiles(list string) ([]string, error) {
	var out []string
	for _, p := range splitList(list) {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("train: --table: %w", err)
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		files, err := filepath.Glob(filepath.Join(p, "*.parquet"))
		if err != nil {
			return nil, fmt.Errorf("train: --table: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("train: --table: no .parquet files in %s", p)
		}
		out = append(out, files...)
	}
	return out, nil
}

// exampleProgress draws a bar of the training examples with their rate
// and the time left on a terminal, and writes a line every ten seconds
// otherwise.
type exampleProgress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	start time.Time
	last  time.Time
	from  int // examples done at start; -1 before the first call
}

func newExampleProgress(w io.Writer) *exampleProgress {
	p := &exampleProgress{w: w, from: -1}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("examples"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("examples"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *exampleProgress) Examples(done, total int) {
	if p.bar != nil {
		if p.bar.GetMax64() != int64(total) {
			p.bar.ChangeMax64(int64(total))
		}
		_ = p.bar.Set64(int64(done))
		return
	}
	now := time.Now()
	if p.from < 0 { // the rate counts from the first batch, not from the pass over the tables before it
		p.start, p.last, p.from = now, now, done
		return
	}
	if now.Sub(p.last) < 10*time.Second && done < total {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := float64(done-p.from) / math.Max(el, 1e-9)
	eta := time.Duration(float64(total-done) / math.Max(rate, 1e-9) * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(p.w, "trained %d of %d examples (%.1f%%), %.0f examples/s, %s left at most\n", done, total, 100*float64(done)/float64(total), rate, eta)
}

// report writes the artifacts into out and says what was trained.
func report(stdout io.Writer, m *classifier.Model, res *training.Result, s training.Settings, out string, start time.Time) error {
	if err := training.WriteArtifacts(out, m, res, s); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained on %d prompts (%d held out for validation) in %d epochs (best %d), %.0f examples/s\n",
		res.Examples, totalN(res), res.Epochs, res.BestEpoch, res.PerSecond)
	fmt.Fprintf(stdout, "validation loss %.4f (the per-task prior alone: %.4f)\n", res.ValLoss, res.PriorValLoss)
	if b := res.Blend; b != nil {
		fmt.Fprintf(stdout, "blend: prior + %g × network + %g × sparse linear path, by out-of-fold routing AIQ on %d examples: %.4f (network alone %.4f, linear path alone %.4f, prior alone %.4f)\n",
			b.Network, b.Linear, b.Examples, b.Chosen(), b.AIQ[training.BlendKey(1, 0)], b.AIQ[training.BlendKey(0, 1)], b.AIQ[training.BlendKey(0, 0)])
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tval AUC\tval Brier\tval mean quality\tval n\texp. output tokens\t")
	for _, name := range m.Meta.Models {
		v := res.Validation[name]
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%d\t%.0f\t\n", name, v.AUC, v.Brier, v.Mean, v.N, m.Meta.OutputTokens[name])
	}
	tw.Flush()
	fmt.Fprintf(stdout, "predictor %s (feature spec %s, data %s)\nwrote %s and %s in %.1fs\n", m.Meta.Version, m.Meta.FeatureSpecID,
		m.Meta.DataFingerprint, filepath.Join(out, training.PredictorFile), filepath.Join(out, training.ManifestFile), time.Since(start).Seconds())
	return nil
}
