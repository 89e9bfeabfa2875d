package datasets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleDataset(t *testing.T) *Dataset {
	t.Helper()
	cat, err := NewCatalogue([]ModelPrice{
		{Name: "big", InputUSDPerMTok: 5, OutputUSDPerMTok: 15, ContextWindow: 128000},
		{Name: "small", InputUSDPerMTok: 0.1, OutputUSDPerMTok: 0.4},
	})
	require.NoError(t, err)
	return &Dataset{
		Catalogue: cat,
		Prompts:   samplePrompts(),
		Outcomes: []OutcomeRecord{
			{PromptID: "p1", Model: "big", Quality: 1, Source: SourceBenchmark},
			{PromptID: "p1", Model: "small", Quality: 0, Source: SourceBenchmark},
			{PromptID: "p2", Model: "small", Quality: 0.5, Source: SourceBenchmark},
		},
	}
}

func TestDatasetRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "folder")
	d := sampleDataset(t)
	require.NoError(t, WriteDataset(dir, d))
	for _, f := range []string{CatalogueFile, PromptsFile, OutcomesFile} {
		assert.FileExists(t, filepath.Join(dir, f))
	}
	got, err := ReadDataset(dir)
	require.NoError(t, err)
	assert.Equal(t, d.Catalogue.Models, got.Catalogue.Models)
	assert.Equal(t, d.Prompts, got.Prompts)
	assert.Equal(t, d.Outcomes, got.Outcomes)
}

func TestReadDatasetReadsEveryOutcomeFile(t *testing.T) {
	dir := t.TempDir()
	d := sampleDataset(t)
	require.NoError(t, WriteDataset(dir, d))
	extra := []OutcomeRecord{{PromptID: "p2", Model: "big", Quality: 0.75, Source: SourceOnline}}
	require.NoError(t, WriteOutcomes(filepath.Join(dir, "outcomes-2.parquet"), extra))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644))

	got, err := ReadDataset(dir)
	require.NoError(t, err)
	// outcomes-2.parquet sorts before outcomes.parquet.
	assert.Equal(t, append(extra, d.Outcomes...), got.Outcomes)

	err = WriteDataset(dir, d)
	assert.ErrorContains(t, err, "outcomes-2.parquet", "writing over a folder with other outcome files is refused")
}

func TestReadDatasetNamesTheFirstBadOutcome(t *testing.T) {
	cases := []struct {
		name     string
		outcomes []OutcomeRecord
		want     string
	}{
		{"unknown model", []OutcomeRecord{
			{PromptID: "p1", Model: "big"}, {PromptID: "p1", Model: "huge"}, {PromptID: "p2", Model: "tiny"},
		}, `bad.parquet row 2: model "huge" is not in the catalogue (2 of 3 outcomes have unknown models)`},
		{"unknown prompt", []OutcomeRecord{
			{PromptID: "p1", Model: "big"}, {PromptID: "p7", Model: "big"},
		}, `bad.parquet row 2: prompt id "p7" is not in the prompt table (1 of 2 outcomes have unknown prompt ids)`},
		{"both", []OutcomeRecord{
			{PromptID: "p7", Model: "big"}, {PromptID: "p1", Model: "huge"},
		}, `bad.parquet row 1: prompt id "p7" is not in the prompt table (1 of 2 outcomes have unknown prompt ids); also 1 outcomes have unknown models`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := sampleDataset(t)
			require.NoError(t, WriteDataset(dir, d))
			require.NoError(t, os.Remove(filepath.Join(dir, OutcomesFile)))
			require.NoError(t, WriteOutcomes(filepath.Join(dir, "outcomes-bad.parquet"), tc.outcomes))
			_, err := ReadDataset(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)

			d.Outcomes = tc.outcomes
			assert.Error(t, d.Validate())
			assert.Error(t, WriteDataset(t.TempDir(), d), "an invalid dataset is not written")
		})
	}
}

func TestReadDatasetRefusesIncompleteFolders(t *testing.T) {
	cases := []struct {
		name   string
		remove string
		want   string
	}{
		{"no catalogue", CatalogueFile, "catalogue.csv"},
		{"no prompts", PromptsFile, "prompts.parquet"},
		{"no outcomes", OutcomesFile, "no outcome files (outcomes*.parquet)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, WriteDataset(dir, sampleDataset(t)))
			require.NoError(t, os.Remove(filepath.Join(dir, tc.remove)))
			_, err := ReadDataset(dir)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidateRefusesBadPromptTables(t *testing.T) {
	d := sampleDataset(t)
	d.Prompts = append(d.Prompts, PromptRecord{PromptID: "p1", Prompt: "again"})
	assert.ErrorContains(t, d.Validate(), `prompt row 3: prompt id "p1" already used by row 1`)
	d.Prompts = []PromptRecord{{PromptID: ""}}
	assert.ErrorContains(t, d.Validate(), "prompt row 1: empty prompt id")
	assert.ErrorContains(t, (&Dataset{}).Validate(), "no catalogue")
}

// Files written for other processes to read get os.Create's permissions,
// not a temporary file's 0600.
func TestWrittenCataloguesAreReadableLikeCreatedFiles(t *testing.T) {
	dir := t.TempDir()
	ref, err := os.Create(filepath.Join(dir, "ref"))
	require.NoError(t, err)
	ref.Close()
	want, err := os.Stat(ref.Name())
	require.NoError(t, err)
	c, err := NewCatalogue([]ModelPrice{{Name: "a", InputUSDPerMTok: 1, OutputUSDPerMTok: 2}})
	require.NoError(t, err)
	path := filepath.Join(dir, "catalogue.csv")
	require.NoError(t, WriteCatalogue(path, c))
	got, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, want.Mode().Perm(), got.Mode().Perm())
	back, err := ReadCatalogue(path)
	require.NoError(t, err)
	assert.Equal(t, c.Models, back.Models)
}
