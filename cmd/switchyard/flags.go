package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"switchyard/datasets"
	"switchyard/features"
	"switchyard/training"
	"switchyard/training/eval"
)

// learnFlags are the predictor's training knobs, shared by the commands
// that train one (train, eval, simulate).
type learnFlags struct {
	seed                                 *int64
	epochs, dim, hidden, batch, patience *int
	buckets, charMax, tuneFolds          *int
	lr, l2, drop, taskDrop               *float64
}

func registerLearnFlags(fs *flag.FlagSet) *learnFlags {
	def := training.DefaultSettings()
	spec := features.DefaultSpec()
	return &learnFlags{
		seed:      fs.Int64("seed", def.Seed, "random seed: the same data and seed give the same model"),
		epochs:    fs.Int("epochs", def.Epochs, "maximum epochs"),
		dim:       fs.Int("dim", def.EmbeddingDim, "embedding width"),
		hidden:    fs.Int("hidden", def.Hidden, "hidden layer width"),
		batch:     fs.Int("batch", def.BatchSize, "mini-batch size"),
		patience:  fs.Int("patience", def.Patience, "epochs without validation improvement before stopping"),
		lr:        fs.Float64("lr", def.Optimizer.LearningRate, "Adam learning rate"),
		l2:        fs.Float64("l2", def.L2, "L2 penalty on weights"),
		drop:      fs.Float64("id-dropout", def.IDDropout, "share of n-gram ids dropped at random from each training example"),
		taskDrop:  fs.Float64("task-dropout", def.TaskDropout, "share of labelled training examples whose task label is hidden at random, so prompts without one route well too"),
		tuneFolds: fs.Int("tune-folds", def.TuneFolds, "folds of the training part whose out-of-fold routing AIQ chooses the blend of network and sparse linear path (0: 5 up to 5,000 training prompts, 3 above; 1: no blend, the network alone)"),
		buckets:   fs.Int("buckets", spec.Buckets, "size of the hashed n-gram id space"),
		charMax:   fs.Int("char-ngrams", spec.CharNgramMax, "character n-grams of orders 3 (or 2) to N within words; 0: none"),
	}
}

func (f *learnFlags) settings() training.Settings {
	s := training.DefaultSettings()
	s.Seed, s.Epochs, s.EmbeddingDim, s.Hidden, s.BatchSize, s.Patience = *f.seed, *f.epochs, *f.dim, *f.hidden, *f.batch, *f.patience
	s.Optimizer.LearningRate, s.L2, s.IDDropout = *f.lr, *f.l2, *f.drop
	s.TaskDropout, s.TuneFolds = *f.taskDrop, *f.tuneFolds
	return s
}

func (f *learnFlags) spec() features.Spec {
	s := features.DefaultSpec()
	s.Buckets = *f.buckets
	s.CharNgramMax, s.CharNgramMin = *f.charMax, 0
	if *f.charMax > 0 {
		s.CharNgramMin = min(3, max(2, *f.charMax))
	}
	return s
}

// bench restricts full-information data to a pool and extracts the
// features of the learn flags' spec.
func (f *learnFlags) bench(ds *datasets.Dataset, pool string) (*eval.Bench, features.Spec, error) {
	spec := f.spec()
	ext, err := features.NewExtractor(spec)
	if err != nil {
		return nil, spec, err
	}
	b, err := eval.NewBench(ds, splitList(pool), ext)
	return b, spec, err
}

// readFullInformation reads a benchmark-table folder or a dataset folder
// (exactly one of them), printing the importer's problems to stderr.
func readFullInformation(bench, data string, stderr io.Writer) (*datasets.Dataset, error) {
	switch {
	case (bench == "") == (data == ""):
		return nil, fmt.Errorf("give exactly one of --benchmark DIR or --data DIR")
	case data != "":
		return datasets.ReadDataset(data)
	}
	ds, rep, err := datasets.ImportBenchmark(bench)
	if rep != nil && rep.ProblemCount > 0 {
		fmt.Fprintln(stderr, rep.String())
	}
	return ds, err
}

// startCPUProfile writes a CPU profile (pprof) of the run to path until the
// returned function is called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
