package datasets

import (
	"bytes"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ModelPrice is one model of the catalogue with its list prices.
type ModelPrice struct {
	Name             string
	InputUSDPerMTok  float64 // USD per million input tokens
	OutputUSDPerMTok float64 // USD per million output tokens
	ContextWindow    int     // tokens; 0 when unknown
	Notes            string
}

// CostUSD is the cost of one answer with the given token counts. It is the
// project's one cost model: serving, training and evaluation all call it.
func (p ModelPrice) CostUSD(inputTokens, outputTokens float64) float64 {
	return inputTokens*p.InputUSDPerMTok/1e6 + outputTokens*p.OutputUSDPerMTok/1e6
}

// EstimateInputTokens estimates the tokens of a prompt as ceil(runes/4), the
// usual rough rule for English text with BPE tokenisers. Invalid UTF-8 bytes
// count as one rune each.
func EstimateInputTokens(text string) int {
	n := utf8.RuneCountInString(text)
	return (n + 3) / 4
}

// Catalogue is the list of models Switchyard may route to, with prices.
type Catalogue struct {
	Models []ModelPrice
	index  map[string]int
}

// NewCatalogue builds a catalogue and checks that names are unique and
// non-empty and prices finite and non-negative.
func NewCatalogue(models []ModelPrice) (*Catalogue, error) {
	c := &Catalogue{Models: models, index: make(map[string]int, len(models))}
	for i, m := range models {
		if strings.TrimSpace(m.Name) == "" {
			return nil, fmt.Errorf("catalogue entry %d: empty model name", i+1)
		}
		if _, dup := c.index[m.Name]; dup {
			return nil, fmt.Errorf("catalogue: model %q listed twice", m.Name)
		}
		for _, v := range []struct {
			name string
			x    float64
		}{{"input_usd_per_mtok", m.InputUSDPerMTok}, {"output_usd_per_mtok", m.OutputUSDPerMTok}} {
			if math.IsNaN(v.x) || math.IsInf(v.x, 0) || v.x < 0 {
				return nil, fmt.Errorf("catalogue: model %q: %s must be a non-negative number, got %v", m.Name, v.name, v.x)
			}
		}
		if m.ContextWindow < 0 {
			return nil, fmt.Errorf("catalogue: model %q: context_window must be non-negative", m.Name)
		}
		c.index[m.Name] = i
	}
	if len(models) == 0 {
		return nil, errors.New("catalogue: no models")
	}
	return c, nil
}

// Lookup returns the model with the given name.
func (c *Catalogue) Lookup(name string) (ModelPrice, bool) {
	i, ok := c.index[name]
	if !ok {
		return ModelPrice{}, false
	}
	return c.Models[i], true
}

// Names returns the model names in catalogue order.
func (c *Catalogue) Names() []string {
	out := make([]string, len(c.Models))
	for i, m := range c.Models {
		out[i] = m.Name
	}
	return out
}

// catalogueHeader is the header WriteCatalogue writes. ReadCatalogue needs the
// first three columns and accepts the last two as optional.
var catalogueHeader = []string{"model", "input_usd_per_mtok", "output_usd_per_mtok", "context_window", "notes"}

// ReadCatalogue reads a catalogue CSV: header
// model,input_usd_per_mtok,output_usd_per_mtok[,context_window][,notes]
// (the benchmark layout's models.csv is a valid catalogue).
func ReadCatalogue(path string) (*Catalogue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	defer f.Close()
	c, err := ParseCatalogue(f)
	if err != nil {
		return nil, fmt.Errorf("read catalogue %s: %w", path, err)
	}
	return c, nil
}

// ParseCatalogue parses a catalogue CSV from r (see ReadCatalogue).
func ParseCatalogue(r io.Reader) (*Catalogue, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, need := range catalogueHeader[:3] {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("header: missing column %q (want %s)", need, strings.Join(catalogueHeader, ","))
		}
	}
	get := func(rec []string, name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	var models []ModelPrice
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		m := ModelPrice{Name: get(rec, "model"), Notes: get(rec, "notes")}
		if m.InputUSDPerMTok, err = strconv.ParseFloat(get(rec, "input_usd_per_mtok"), 64); err != nil {
			return nil, fmt.Errorf("line %d: input_usd_per_mtok: %w", line, err)
		}
		if m.OutputUSDPerMTok, err = strconv.ParseFloat(get(rec, "output_usd_per_mtok"), 64); err != nil {
			return nil, fmt.Errorf("line %d: output_usd_per_mtok: %w", line, err)
		}
		if s := get(rec, "context_window"); s != "" {
			if m.ContextWindow, err = strconv.Atoi(s); err != nil {
				return nil, fmt.Errorf("line %d: context_window: %w", line, err)
			}
		}
		models = append(models, m)
	}
	return NewCatalogue(models)
}

// WriteCatalogue writes c as CSV to path, atomically (see WriteFileAtomic).
func WriteCatalogue(path string, c *Catalogue) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(catalogueHeader)
	for _, m := range c.Models {
		cw := ""
		if m.ContextWindow > 0 {
			cw = strconv.Itoa(m.ContextWindow)
		}
		_ = w.Write([]string{m.Name, strconv.FormatFloat(m.InputUSDPerMTok, 'g', -1, 64),
			strconv.FormatFloat(m.OutputUSDPerMTok, 'g', -1, 64), cw, m.Notes})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write catalogue %s: %w", path, err)
	}
	return WriteFileAtomic(path, buf.Bytes())
}

// WriteFileAtomic writes b to a temporary file beside path, syncs it and
// renames it into place, so readers see the old file or the whole new one.
// The file gets the permissions os.Create gives (0666 less the umask), not
// os.CreateTemp's 0600: what one user (a training job) writes, another (the
// server) reads.
func WriteFileAtomic(path string, b []byte) error {
	// a random name (O_EXCL makes sure) and mode 0666, which the kernel masks
	tmp, err := os.OpenFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-"+rand.Text()+".tmp"),
		os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Subset returns a catalogue with only the named models, in the given order.
func (c *Catalogue) Subset(names []string) (*Catalogue, error) {
	out := make([]ModelPrice, 0, len(names))
	for _, n := range names {
		m, ok := c.Lookup(n)
		if !ok {
			known := c.Names()
			sort.Strings(known)
			return nil, fmt.Errorf("model %q is not in the catalogue (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, m)
	}
	return NewCatalogue(out)
}
