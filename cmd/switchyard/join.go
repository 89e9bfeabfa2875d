package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"switchyard/datasets/join"
	"switchyard/datasets/logroot"
)

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("join", stderr)
	logs := fs.String("logs", "", "comma-separated log roots of every replica: folders or bucket URLs (s3://, gs://, azblob://, file://)")
	out := fs.String("out", "", "the training table to write (Parquet)")
	jf := registerJoinFlags(fs)
	sample := fs.Float64("sample", 1, "share of the decisions to keep, by a hash of --seed and the decision id")
	seed := fs.Int64("seed", 1, "seed of the sample")
	clip := fs.Float64("clip", 20, "largest inverse-propensity weight")
	threads := fs.Int("threads", 0, "threads of the join engine (0: every core)")
	rowGroup := fs.Int("row-group", 1<<16, "rows in each of the table's row groups: training shuffles whole row groups, then within its buffer")
	if err := parse(fs, args, "logs", "out"); err != nil {
		return err
	}
	opt, err := jf.options(ctx, *logs, *out+".spill")
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	opt.Sample, opt.Seed, opt.Clip, opt.Threads, opt.RowGroup = *sample, *seed, *clip, *threads, *rowGroup
	start := time.Now()
	st, err := join.Logs(ctx, opt, *out)
	if err != nil {
		return err
	}
	for _, s := range st.Skipped {
		fmt.Fprintln(stderr, "skipped:", s)
	}
	fmt.Fprintf(stdout, "training table %s: %d examples from %d decision and %d outcome files (%d skipped) in %.1fs\n",
		*out, st.Rows, st.DecisionFiles, st.OutcomeFiles, len(st.Skipped), time.Since(start).Seconds())
	return nil
}

// joinFlags are the flags of every command that joins logs on the engine.
type joinFlags struct {
	since, until, tempDir *string
	skipBad               *bool
	memMB                 *int
}

func registerJoinFlags(fs *flag.FlagSet) *joinFlags {
	return &joinFlags{
		since:   fs.String("since", "", "decisions from this time on: RFC 3339 (2026-12-01T00:00:00Z), a date (2026-12-01) or an age (7d, 36h)"),
		until:   fs.String("until", "", "decisions before this time (same forms as --since)"),
		skipBad: fs.Bool("skip-bad", false, "leave out log files that cannot be read (each named, and counted) instead of failing"),
		memMB:   fs.Int("memory-mb", 768, "memory of the join engine; beyond, it spills to --temp-dir"),
		tempDir: fs.String("temp-dir", "", "where the join engine spills"),
	}
}

// options are the join's options for the comma-separated log roots (a
// bucket is fetched into the local cache first); spill is the engine's
// spill folder unless --temp-dir names one.
func (f *joinFlags) options(ctx context.Context, logs, spill string) (join.Options, error) {
	now := time.Now()
	opt := join.Options{SkipBad: *f.skipBad, MemoryMB: *f.memMB, TempDir: *f.tempDir}
	var err error
	if opt.Since, err = parseWhen(*f.since, now); err != nil {
		return opt, fmt.Errorf("--since: %w", err)
	}
	if opt.Until, err = parseWhen(*f.until, now); err != nil {
		return opt, fmt.Errorf("--until: %w", err)
	}
	for _, root := range splitList(logs) {
		dir, err := logroot.Local(ctx, root, "")
		if err != nil {
			return opt, err
		}
		opt.Logs = append(opt.Logs, dir)
	}
	if opt.TempDir == "" {
		opt.TempDir = spill
	}
	return opt, nil
}

// parseWhen reads a time: RFC 3339, a date (UTC midnight) or an age before
// now ("7d", "36h", "90m"); "" is no bound.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, nil
	case strings.HasSuffix(s, "d"):
		if n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, a date such as 2026-12-01, or an age such as 7d or 36h)", s)
}
