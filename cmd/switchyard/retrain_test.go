package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/training"
)

// Retraining as a routine: train from a fleet's logs (joined on the
// embedded engine and streamed), then again from the last six hours only,
// warm-started from the first predictor with two models added to the
// pool; a warm start from a predictor of other layer widths is refused.
func TestRetrainFromLogsWithAWindowAndAWarmStart(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	data := generateData(t, 1, 200)
	cat := filepath.Join(data, "catalogue.csv")
	logs := filepath.Join(t.TempDir(), "logs")
	out, err := run(t, "generate", "--logs", logs, "--decisions", "20000", "--prompt-bytes", "256", "--seed", "2")
	require.NoError(t, err, out)
	joined := func(out string) int {
		m := regexp.MustCompile(`logs: (\d+) examples joined`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		n, _ := strconv.Atoi(m[1])
		return n
	}
	small := []string{"--epochs", "1", "--dim", "8", "--hidden", "8", "--buckets", "4096"}
	first := filepath.Join(t.TempDir(), "first")
	out, err = run(t, append([]string{"train", "--logs", logs, "--catalogue", cat, "--out", first,
		"--models", "open-8b-selfhosted,flash,mini,haiku-class,gpt-4o-class"}, small...)...)
	require.NoError(t, err, out)
	all := joined(out)
	assert.Greater(t, all, 18_000, out)
	assert.Regexp(t, `trained \d+ of \d+ examples`, out, "progress lines when not on a terminal")

	// the synthetic logs span 2026-12-01; the last six hours of it
	second := filepath.Join(t.TempDir(), "second")
	out, err = run(t, append([]string{"train", "--logs", logs, "--catalogue", cat, "--out", second,
		"--since", "2026-12-01T18:00:00Z", "--init", first}, small...)...)
	require.NoError(t, err, out)
	recent := joined(out)
	assert.InDelta(t, all/4, recent, float64(all)/20, "a quarter of the day's decisions: %s", out)
	b, err := os.ReadFile(filepath.Join(second, training.ManifestFile))
	require.NoError(t, err)
	var man training.Manifest
	require.NoError(t, json.Unmarshal(b, &man))
	assert.Len(t, man.Models, 7, "the two models new to the pool got outputs")

	out, err = run(t, "train", "--logs", logs, "--catalogue", cat, "--out", t.TempDir(), "--init", first, "--epochs", "1", "--buckets", "4096")
	require.Error(t, err)
	assert.Contains(t, out, "warm start")
}
