package datasets

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// ReadLogDir reads every decision log file (decisions*.parquet) and outcome
// log file (outcomes*.parquet) under dir, in any sub-folder (for example
// Hive-style dt=/hour= partitions), in path order. Temporary files of
// writers still at work (names starting with ".") are skipped.
func ReadLogDir(dir string) ([]DecisionRecord, []OutcomeRecord, error) {
	dpaths, opaths, err := LogFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	decisions, err := readFiles[DecisionRecord](dpaths)
	if err != nil {
		return nil, nil, err
	}
	outcomes, err := readFiles[OutcomeRecord](opaths)
	if err != nil {
		return nil, nil, err
	}
	return decisions, outcomes, nil
}

// readFiles reads the rows of every file of paths, in order, into one slice
// (nil when there are none).
func readFiles[T any](paths []string) ([]T, error) {
	var all []T
	for _, p := range paths {
		rows, err := ReadFile[T](p)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}

// logFiles lists the decision and outcome log files under dir, each in
// path order (which, for the dt=/hour= partitions and the time-stamped file
// names the logs write, is the order they were written in).
// LogFiles lists the decision and outcome log files under dir (any
// sub-folders; every writer's), each list sorted.
func LogFiles(dir string) (decisions, outcomes []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".parquet") {
			return nil
		}
		switch {
		case strings.HasPrefix(name, DecisionLogPrefix):
			decisions = append(decisions, path)
		case strings.HasPrefix(name, OutcomeLogPrefix):
			outcomes = append(outcomes, path)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read logs %s: %w", dir, err)
	}
	sort.Strings(decisions)
	sort.Strings(outcomes)
	return decisions, outcomes, nil
}
