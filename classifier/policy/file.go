package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"switchyard/datasets"
)

// File is a policy as stored on disk: its Config plus the predictor and
// catalogue it routes with. `switchyard calibrate` writes it and `serve`,
// `route`, `calibrate` and `ope --policy-file` read it. Relative paths are relative to the
// file's folder.
type File struct {
	Config
	Predictor string `json:"predictor"` // ONNX predictor
	Catalogue string `json:"catalogue"` // model catalogue CSV
	// Note records how the setting was chosen (for people; not read).
	Note string `json:"note,omitempty"`
}

// Validate checks the fields that do not need the files.
func (f *File) Validate() error {
	if err := f.Config.Validate(); err != nil {
		return err
	}
	switch {
	case f.Predictor == "":
		return fmt.Errorf("policy %s: predictor is empty", f.Name)
	case f.Catalogue == "":
		return fmt.Errorf("policy %s: catalogue is empty", f.Name)
	}
	return nil
}

// ReadFile reads and validates a policy file, resolving its paths.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&f.Predictor, &f.Catalogue} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return &f, nil
}

// WriteFile writes f as indented JSON, atomically.
func WriteFile(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	if err := datasets.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}
