package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/datasets/logroot"
	"switchyard/features"
	"switchyard/training"
	"switchyard/training/eval"
)

// newFlagSet is a command's flag set: a parse error (or -h) prints the
// command's usage to stderr and is returned, not exited on, so that main
// reports every failure the same way.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses a command's flags, refuses stray positional arguments and
// names the first of the required flags left empty. (route, the one command
// with positional arguments, calls fs.Parse itself.)
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	for _, n := range required {
		if f := fs.Lookup(n); f == nil || f.Value.String() == "" {
			return fmt.Errorf("%s: --%s is required", fs.Name(), n)
		}
	}
	return nil
}

// learnFlags are the predictor's training knobs, shared by the commands
// that train one (train, eval, quality, simulate).
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

// poolHelp is the help of --models where it names the pool bench restricts
// a benchmark to (eval, simulate).
const poolHelp = "comma-separated pool (default: every model with outcomes)"

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

// evalFlags are what eval and quality share: the learned router's training
// knobs, the k-nearest-neighbours baseline's k and --cpuprofile.
type evalFlags struct {
	learn *learnFlags
	knn   *int
	cpu   *cpuProfileFlag
}

func registerEvalFlags(fs *flag.FlagSet) *evalFlags {
	return &evalFlags{
		learn: registerLearnFlags(fs),
		knn:   fs.Int("knn", 25, "neighbours of the k-nearest-neighbours baseline"),
		cpu:   registerCPUProfile(fs),
	}
}

// config is the evaluation eval and quality run: the learned router trained
// with the learn flags' settings on features of spec, and the baselines.
func (f *evalFlags) config(spec features.Spec) eval.Config {
	s := f.learn.settings()
	return eval.Config{TestShare: 0.2, Folds: 1, Salt: "eval", Lambdas: 60,
		Learned: &eval.Learned{Trainer: training.Trainer{Settings: s}, Spec: spec},
		Baselines: []eval.Predictor{&eval.PerTask{}, &eval.KNN{K: *f.knn},
			&eval.Logistic{Epochs: 5, LR: 0.05, L2: 1e-6, Seed: s.Seed}},
	}
}

// sourceFlags are --benchmark and --data: the full-information outcomes a
// command reads (eval, calibrate, simulate). Each command words their help
// for what it does with them.
type sourceFlags struct{ bench, data string }

func registerSourceFlags(fs *flag.FlagSet, benchHelp, dataHelp string) *sourceFlags {
	f := &sourceFlags{}
	fs.StringVar(&f.bench, "benchmark", "", benchHelp)
	fs.StringVar(&f.data, "data", "", dataHelp)
	return f
}

// read reads the benchmark-table folder or the dataset folder (exactly one
// of them must be given), printing the importer's problems to stderr.
func (f *sourceFlags) read(stderr io.Writer) (*datasets.Dataset, error) {
	switch {
	case (f.bench == "") == (f.data == ""):
		return nil, fmt.Errorf("give exactly one of --benchmark DIR or --data DIR")
	case f.data != "":
		return datasets.ReadDataset(f.data)
	}
	ds, rep, err := datasets.ImportBenchmark(f.bench)
	if rep != nil && rep.ProblemCount > 0 {
		fmt.Fprintln(stderr, rep.String())
	}
	return ds, err
}

// cpuProfileFlag is --cpuprofile (serve, eval, quality): a CPU profile of
// the whole run.
type cpuProfileFlag struct{ cmd, path string }

func registerCPUProfile(fs *flag.FlagSet) *cpuProfileFlag {
	p := &cpuProfileFlag{cmd: fs.Name()}
	fs.StringVar(&p.path, "cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	return p
}

// parse parses the command's flags as parse does and starts writing a CPU
// profile (pprof) to the flag's file, until stop is called; without a file
// it profiles nothing.
func (p *cpuProfileFlag) parse(fs *flag.FlagSet, args []string) (stop func(), err error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if p.path == "" {
		return func() {}, nil
	}
	f, err := os.Create(p.path)
	if err != nil {
		return nil, fmt.Errorf("%s: cpu profile: %w", p.cmd, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: cpu profile: %w", p.cmd, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// routerFlags build a router from a predictor and a catalogue, or from a
// policy file (serve, route, calibrate, ope).
type routerFlags struct {
	model, catalogue, scorer, ortLib, policyName, candidates, policyFile string
	bar                                                                  float64
}

func registerRouterFlags(fs *flag.FlagSet) *routerFlags {
	f := &routerFlags{}
	fs.StringVar(&f.policyFile, "policy-file", "", "configuration JSON (from 'switchyard calibrate', or serve's --config): its default policy with its predictor and catalogue; replaces the flags below")
	fs.StringVar(&f.model, "model", "", "ONNX predictor written by 'switchyard train'")
	fs.StringVar(&f.catalogue, "catalogue", "", "model catalogue CSV (prices)")
	fs.StringVar(&f.scorer, "scorer", policy.ScorerONNX, "scorer: onnx (ONNX Runtime) or go (pure-Go forward pass)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library (default: $SWITCHYARD_ORT_LIB, else .ort/libonnxruntime.so.1)")
	fs.StringVar(&f.policyName, "policy", "default", "policy name recorded with every decision")
	fs.StringVar(&f.candidates, "candidates", "", "comma-separated default candidates (default: every model the predictor scores)")
	fs.Float64Var(&f.bar, "quality-bar", 0.8, "default quality bar in [0,1] when a request names none")
	return f
}

// policy returns the policy to serve: the policy file's, or the flags'.
func (f *routerFlags) policy() (*policy.File, error) {
	if f.policyFile != "" {
		if f.model != "" || f.catalogue != "" {
			return nil, errors.New("give --policy-file or --model and --catalogue, not both")
		}
		return policy.ReadFile(f.policyFile)
	}
	if f.model == "" || f.catalogue == "" {
		return nil, errors.New("--model and --catalogue (or --policy-file) are required")
	}
	return &policy.File{Config: policy.Config{Name: f.policyName, Version: "1", QualityBar: f.bar, Candidates: splitList(f.candidates)},
		Predictor: f.model, Catalogue: f.catalogue}, nil
}

func (f *routerFlags) load() (*policy.Router, *datasets.Catalogue, io.Closer, error) {
	return f.loadWith(nil)
}

// loadWith is load with a callback for every scoring that falls back to the
// pure-Go scorer.
func (f *routerFlags) loadWith(onFallback func()) (*policy.Router, *datasets.Catalogue, io.Closer, error) {
	pf, err := f.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	cat, err := datasets.ReadCatalogue(pf.Catalogue)
	if err != nil {
		return nil, nil, nil, err
	}
	r, sc, err := policy.LoadRouter(policy.LoadOptions{
		ModelPath: pf.Predictor, Catalogue: cat, Scorer: f.scorer, RuntimeLib: f.ortLib, Policy: pf.Config, OnFallback: onFallback,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return r, cat, sc, nil
}

// engineLogFlags are the flags of the commands that read the logs through
// the embedded engine for policy evaluation (ope, experiment analyze).
type engineLogFlags struct {
	logs    *string
	skipBad *bool
	memMB   *int
	tempDir *string
}

func registerEngineLogFlags(fs *flag.FlagSet) *engineLogFlags {
	return &engineLogFlags{
		logs:    fs.String("logs", "", "comma-separated decision and outcome log roots (every replica's): folders (Parquet, any sub-folders) or bucket URLs (s3://, gs://, azblob://, file://)"),
		skipBad: fs.Bool("skip-bad", false, "leave out log files that cannot be read (each named) instead of failing"),
		memMB:   fs.Int("memory-mb", 1024, "memory of the engine that joins the logs; beyond, it spills to --temp-dir"),
		tempDir: fs.String("temp-dir", "", "where the engine spills and keeps its results until the end (default: the system's temporary folder)"),
	}
}

// open checks the log files (naming those left out with --skip-bad on
// stderr) and returns their reader; roots that are bucket URLs are first
// fetched into the user's cache folder.
func (f *engineLogFlags) open(ctx context.Context, stderr io.Writer) (*join.LogReader, error) {
	opt := join.LogOptions{SkipBad: *f.skipBad, MemoryMB: *f.memMB, TempDir: *f.tempDir}
	for _, root := range splitList(*f.logs) {
		dir, err := logroot.Local(ctx, root, "")
		if err != nil {
			return nil, err
		}
		opt.Logs = append(opt.Logs, dir)
	}
	r, err := join.OpenLogs(opt)
	if err != nil {
		return nil, err
	}
	for _, s := range r.Stats().Skipped {
		fmt.Fprintln(stderr, "skipped:", s)
	}
	return r, nil
}

// readLogs reads the decision and outcome logs under root into memory: a
// folder, or a bucket (s3://, gs://, azblob://, file://) whose Parquet
// files are first fetched into the user's cache folder.
func readLogs(ctx context.Context, root string) ([]datasets.DecisionRecord, []datasets.OutcomeRecord, error) {
	dir, err := logroot.Local(ctx, root, "")
	if err != nil {
		return nil, nil, err
	}
	return datasets.ReadLogDir(dir)
}
