package datasets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// File names inside a dataset folder.
const (
	CatalogueFile = "catalogue.csv"    // the Catalogue, as written by WriteCatalogue
	PromptsFile   = "prompts.parquet"  // PromptRecord rows
	OutcomesFile  = "outcomes.parquet" // OutcomeRecord rows, as written by WriteDataset
	// OutcomesGlob matches every outcome file ReadDataset reads, so outcomes
	// may be split over several files (outcomes-2024-06.parquet, ...).
	OutcomesGlob = "outcomes*.parquet"
)

// Dataset is a set of observed outcomes with the prompts they refer to and
// the catalogue of the models they were observed on. It is what importers
// produce and what training and evaluation read.
type Dataset struct {
	Catalogue *Catalogue
	Prompts   []PromptRecord
	Outcomes  []OutcomeRecord
}

// Validate checks that prompt ids are non-empty and unique, and that every
// outcome names a catalogue model and a prompt of the prompt table.
func (d *Dataset) Validate() error {
	if d.Catalogue == nil {
		return errors.New("dataset has no catalogue")
	}
	prompts, err := promptIndex(d.Prompts)
	if err != nil {
		return err
	}
	return checkOutcomes("outcome", d.Outcomes, d.Catalogue, prompts)
}

// promptIndex maps prompt ids to their row, refusing empty and duplicate ids.
func promptIndex(prompts []PromptRecord) (map[string]int, error) {
	idx := make(map[string]int, len(prompts))
	for i, p := range prompts {
		if p.PromptID == "" {
			return nil, fmt.Errorf("prompt row %d: empty prompt id", i+1)
		}
		if j, dup := idx[p.PromptID]; dup {
			return nil, fmt.Errorf("prompt row %d: prompt id %q already used by row %d", i+1, p.PromptID, j+1)
		}
		idx[p.PromptID] = i
	}
	return idx, nil
}

// checkOutcomes names the first outcome row (1-based, prefixed by where) whose
// model is not in cat or whose prompt id is not in prompts, with counts.
func checkOutcomes(where string, rows []OutcomeRecord, cat *Catalogue, prompts map[string]int) error {
	firstModel, firstPrompt := -1, -1
	nModel, nPrompt := 0, 0
	for i := range rows {
		if _, ok := cat.Lookup(rows[i].Model); !ok {
			if firstModel < 0 {
				firstModel = i
			}
			nModel++
		}
		if _, ok := prompts[rows[i].PromptID]; !ok {
			if firstPrompt < 0 {
				firstPrompt = i
			}
			nPrompt++
		}
	}
	modelErr := func() error {
		return fmt.Errorf("%s row %d: model %q is not in the catalogue (%d of %d outcomes have unknown models)",
			where, firstModel+1, rows[firstModel].Model, nModel, len(rows))
	}
	promptErr := func() error {
		return fmt.Errorf("%s row %d: prompt id %q is not in the prompt table (%d of %d outcomes have unknown prompt ids)",
			where, firstPrompt+1, rows[firstPrompt].PromptID, nPrompt, len(rows))
	}
	switch {
	case firstModel >= 0 && (firstPrompt < 0 || firstModel <= firstPrompt):
		if firstPrompt >= 0 {
			return fmt.Errorf("%w; also %d outcomes have unknown prompt ids", modelErr(), nPrompt)
		}
		return modelErr()
	case firstPrompt >= 0:
		if firstModel >= 0 {
			return fmt.Errorf("%w; also %d outcomes have unknown models", promptErr(), nModel)
		}
		return promptErr()
	}
	return nil
}

// WriteDataset validates d and writes it to dir (created if needed) as
// CatalogueFile, PromptsFile and OutcomesFile. Each file is written
// atomically. It refuses a folder that holds other outcome files matching
// OutcomesGlob, since ReadDataset would read them back as part of d.
func WriteDataset(dir string, d *Dataset) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("write dataset %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, OutcomesGlob))
	if err != nil {
		return fmt.Errorf("write dataset %s: %w", dir, err)
	}
	for _, f := range files {
		if filepath.Base(f) != OutcomesFile {
			return fmt.Errorf("write dataset %s: folder already holds outcome file %s that would be read as part of this dataset; remove it or write to another folder", dir, filepath.Base(f))
		}
	}
	if err := WriteCatalogue(filepath.Join(dir, CatalogueFile), d.Catalogue); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	if err := WriteFile(filepath.Join(dir, PromptsFile), d.Prompts); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	if err := WriteFile(filepath.Join(dir, OutcomesFile), d.Outcomes); err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	return nil
}

// ReadDataset reads a dataset folder written by WriteDataset: CatalogueFile,
// PromptsFile and every file matching OutcomesGlob (in name order). It checks
// the dataset like Validate and names the file and row of the first outcome
// that refers to an unknown model or prompt.
func ReadDataset(dir string) (*Dataset, error) {
	cat, err := ReadCatalogue(filepath.Join(dir, CatalogueFile))
	if err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	}
	promptsPath := filepath.Join(dir, PromptsFile)
	prompts, err := ReadFile[PromptRecord](promptsPath)
	if err != nil {
		return nil, fmt.Errorf("read dataset: %w", err)
	}
	idx, err := promptIndex(prompts)
	if err != nil {
		return nil, fmt.Errorf("read dataset: %s: %w", promptsPath, err)
	}
	files, err := filepath.Glob(filepath.Join(dir, OutcomesGlob))
	if err != nil {
		return nil, fmt.Errorf("read dataset %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read dataset %s: no outcome files (%s)", dir, OutcomesGlob)
	}
	slices.Sort(files)
	var outcomes []OutcomeRecord
	for _, path := range files {
		rows, err := ReadFile[OutcomeRecord](path)
		if err != nil {
			return nil, fmt.Errorf("read dataset: %w", err)
		}
		if err := checkOutcomes(path, rows, cat, idx); err != nil {
			return nil, fmt.Errorf("read dataset: %w", err)
		}
		if outcomes == nil {
			outcomes = rows
		} else {
			outcomes = append(outcomes, rows...)
		}
	}
	return &Dataset{Catalogue: cat, Prompts: prompts, Outcomes: outcomes}, nil
}
