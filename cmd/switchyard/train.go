package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"switchyard/datasets"
	"switchyard/datasets/table"
	"switchyard/training"
)

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	data := fs.String("data", "", "dataset folder (from generate or import): full-information outcomes, weight 1")
	logs := fs.String("logs", "", "logs of a server or fleet, a folder or a bucket URL (s3://, gs://, azblob://, file://): decisions joined with their outcomes, weighted by inverse propensity")
	tablePath := fs.String("table", "", "a training table (from switchyard join, or another engine running its SQL): examples weighted by inverse propensity")
	catPath := fs.String("catalogue", "", "model catalogue (needed with --logs or --table alone)")
	clip := fs.Float64("clip", 20, "largest inverse-propensity weight of a logged decision")
	out := fs.String("out", "", "output folder for predictor.onnx and manifest.json")
	models := fs.String("models", "", "comma-separated pool of models, in output order (default: every model with outcomes)")
	lf := registerLearnFlags(fs)
	valShare := fs.Float64("val-share", 0.1, "share of prompts held out for validation (split by a hash of the prompt id)")
	if err := parse(fs, args, "out"); err != nil {
		return err
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
		rows, err := table.Read(*tablePath)
		if err != nil {
			return err
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
	if err := training.WriteArtifacts(*out, m, res, s); err != nil {
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
		m.Meta.DataFingerprint, filepath.Join(*out, training.PredictorFile), filepath.Join(*out, training.ManifestFile), time.Since(start).Seconds())
	return nil
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
