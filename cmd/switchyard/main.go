// Command switchyard is the learned LLM router: it generates or imports
// outcome data, trains and evaluates the predictor, serves routing
// decisions, and analyses experiments and exploration logs. Every command
// is listed by `switchyard help` from commands() below; docs/commands.md has
// the table.
//
//	switchyard generate   --out DIR                     synthetic workload
//	switchyard import     --benchmark DIR --out DIR     benchmark-table layout (or --long FILE)
//	switchyard train      --data DIR --out DIR          predictor.onnx + manifest.json
//	switchyard serve      --model F --catalogue F       HTTP service (or --config, --policy-file)
//	switchyard route      --model F --catalogue F PROMPT  one decision, as JSON
//	switchyard eval       --benchmark DIR               learned router against baselines
//	switchyard quality                                  the routing-quality table
//	switchyard calibrate  --data DIR --model F ...      the bar or λ that meets a target
//	switchyard simulate                                 bandit traffic through the server
//	switchyard loadgen    --addr HOST:PORT              load against a running server
//	switchyard experiment analyze --logs DIR --config F per-arm results of an experiment
//	switchyard ope        --logs DIR --model F ...      a policy's value from exploration logs
//	switchyard join       --logs DIR,... --out TABLE   the training table, joined on the embedded DuckDB
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"generate", "write the seeded synthetic workload (prompts, outcomes, catalogue) as a dataset folder", runGenerate},
		{"import", "import a benchmark-table folder or a long-format outcome table into a dataset folder", runImport},
		{"join", "join decision and outcome logs into a training table (Parquet), on the embedded DuckDB", runJoin},
		{"train", "train the predictor on a dataset folder and export it to ONNX", runTrain},
		{"serve", "serve POST /v1/route over HTTP", runServe},
		{"route", "decide one prompt and print the decision as JSON", runRoute},
		{"eval", "evaluate the learned router against baselines on a full-information benchmark", runEval},
		{"quality", "the routing-quality table: eval with K folds in each task-label setting on the shared benchmarks", runQuality},
		{"calibrate", "pick the quality bar or lambda that meets a cost, traffic-share or quality target", runCalibrate},
		{"simulate", "replay a full-information benchmark as bandit traffic through the server, retraining from its logs", runSimulate},
		{"loadgen", "send a bounded HTTP load to a local server and print throughput and latency percentiles", runLoadgen},
		{"experiment", "experiment analyze: per-arm results of an A/B experiment from the logs", runExperiment},
		{"ope", "estimate a policy's quality and cost off-policy from exploration logs", runOPE},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "switchyard:", err)
		}
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: switchyard COMMAND [flags]\n\ncommands:")
		for _, c := range commands() {
			fmt.Fprintf(stderr, "  %-9s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(stderr, "\nrun 'switchyard COMMAND -h' for a command's flags")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage()
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
