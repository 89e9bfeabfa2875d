package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"switchyard/datasets"
)

// File is one policy with the predictor and catalogue it routes with: what
// a configuration with one policy holds (and the earlier policy-file form). `switchyard calibrate` writes it and `serve`,
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

// ReadFile reads a policy: the default policy of a configuration file (the
// format `serve --config` reads: a catalogue, policies, experiments; see
// IsConfiguration) or a policy file of the earlier form (one policy's
// fields with its predictor and catalogue). It validates the policy and
// resolves relative paths against the file's folder.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	var f File
	if IsConfiguration(b) {
		var c struct {
			Catalogue     string          `json:"catalogue"`
			DefaultPolicy string          `json:"default_policy"`
			Note          string          `json:"note"`
			Policies      []PolicySpec    `json:"policies"`
			Experiments   json.RawMessage `json:"experiments"` // the server's business
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("read policy %s: %w", path, err)
		}
		if len(c.Policies) == 0 {
			return nil, fmt.Errorf("read policy %s: no policies", path)
		}
		p, ok := c.Policies[0], c.DefaultPolicy == ""
		for _, q := range c.Policies {
			if q.Name == c.DefaultPolicy {
				p, ok = q, true
			}
		}
		if !ok { // as the server reads it: no fallback to another policy
			return nil, fmt.Errorf("read policy %s: default policy %q is not defined", path, c.DefaultPolicy)
		}
		f = File{Config: p.Config, Predictor: p.Predictor, Catalogue: c.Catalogue, Note: c.Note}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("read policy %s: %w", path, err)
		}
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

// PolicySpec is one policy of a configuration: the policy's settings plus
// its predictor and an optional shadow model.
type PolicySpec struct {
	Config
	Predictor string `json:"predictor"` // ONNX predictor
	Shadow    string `json:"shadow,omitempty"`
}

// IsConfiguration reports whether b (JSON) is a configuration with a list
// of policies rather than a policy file of the earlier, single-policy form.
func IsConfiguration(b []byte) bool {
	var probe struct {
		Policies json.RawMessage `json:"policies"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.Policies != nil
}

// WriteFile writes f as a configuration with one policy (the format every
// command reads), as indented JSON, atomically.
func WriteFile(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	c := struct {
		Catalogue     string       `json:"catalogue"`
		DefaultPolicy string       `json:"default_policy"`
		Note          string       `json:"note,omitempty"`
		Policies      []PolicySpec `json:"policies"`
	}{Catalogue: f.Catalogue, DefaultPolicy: f.Name, Note: f.Note, Policies: []PolicySpec{{Config: f.Config, Predictor: f.Predictor}}}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	if err := datasets.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}
