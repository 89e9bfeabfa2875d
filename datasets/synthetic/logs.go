package synthetic

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"

	"switchyard/datasets"
)

// LogsConfig sizes the synthetic decision and outcome logs of a fleet.
type LogsConfig struct {
	Seed        int64
	Decisions   int       // in all
	Replicas    int       // writers, each with its own files; 4 when 0
	PromptBytes int       // prompts are padded or cut to this size (less a split character); 1024 when 0
	Prompts     int       // distinct workload prompts drawn from; 6000 when 0
	Start       time.Time // the first decision; the decisions span a day
	// Epsilon is the logging policy's exploration: the greedy model (the
	// cheapest that truly clears 0.8 on the prompt) with 1 − ε + ε/k, each
	// other with ε/k; 0.1 when 0.
	Epsilon float64
	// Experiment, when set, puts every decision in an experiment of that
	// name with two arms, "a" and "b", of equal weight, assigned by user
	// (of Users; 100,000 when 0) as a server assigns them; both arms log
	// with the same policy.
	Experiment string
	Users      int
}

// The two arms of LogsConfig.Experiment.
const (
	ArmA = "a"
	ArmB = "b"
)

// LogsStats count what WriteLogs wrote.
type LogsStats struct {
	Decisions, Outcomes, Shadow, Late, Unanswered, Files int
}

// rowsPerFile bounds a log file, as a server's rotation does.
const rowsPerFile = 250_000

// WriteLogs writes synthetic logs into dir the way a fleet's servers do:
// hour partitions, each replica's files named with its writer id,
// decisions with their candidates (every model, with its probability) and
// propensities from an exploring policy, an outcome for 95% of them (drawn
// from the workload's ground truth; 2% arriving in a later hour's file), a
// shadow outcome for 10%; with an experiment, each decision's arm and unit.
func WriteLogs(dir string, cfg LogsConfig) (LogsStats, error) {
	var st LogsStats
	if cfg.Replicas <= 0 {
		cfg.Replicas = 4
	}
	if cfg.PromptBytes <= 0 {
		cfg.PromptBytes = 1024
	}
	if cfg.Prompts <= 0 {
		cfg.Prompts = DefaultPrompts
	}
	if cfg.Epsilon == 0 {
		cfg.Epsilon = 0.1
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Users <= 0 {
		cfg.Users = 100_000
	}
	if cfg.Decisions < 1 {
		return st, fmt.Errorf("synthetic logs: %d decisions", cfg.Decisions)
	}
	w, err := Generate(Config{Seed: cfg.Seed, Prompts: cfg.Prompts})
	if err != nil {
		return st, err
	}
	models := w.Catalogue.Names()
	k := len(models)
	// the logging predictor's quality of each model: its mean on the task
	predicted := map[string][]float64{}
	seen := map[string]float64{}
	for i, p := range w.Prompts {
		if predicted[p.Task] == nil {
			predicted[p.Task] = make([]float64, k)
		}
		for j := range k {
			predicted[p.Task][j] += w.Outcomes[i*k+j].Quality
		}
		seen[p.Task]++
	}
	for task, q := range predicted {
		for j := range q {
			q[j] /= seen[task]
		}
	}
	// per prompt: its padded text and hash, its outcomes, its greedy model,
	// and the candidates logged with it (every model, with its probability)
	type prompt struct {
		text, sha  string
		task       string
		outcomes   []datasets.OutcomeRecord
		greedy     int
		candidates []datasets.Candidate
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	ps := make([]prompt, len(w.Prompts))
	for i, p := range w.Prompts {
		// padded with other prompts, or cut, to PromptBytes (not inside a character)
		var sb strings.Builder
		sb.WriteString(p.Prompt)
		for sb.Len() < cfg.PromptBytes {
			sb.WriteString("\n")
			sb.WriteString(w.Prompts[rng.Intn(len(w.Prompts))].Prompt)
		}
		text := strings.ToValidUTF8(sb.String()[:cfg.PromptBytes], "")
		sum := sha256.Sum256([]byte(text))
		ps[i] = prompt{text: text, sha: hex.EncodeToString(sum[:]), task: p.Task, outcomes: w.Outcomes[i*k : (i+1)*k], greedy: k - 1}
		for j := range k { // models are in catalogue order, cheapest first
			if ps[i].outcomes[j].Quality >= 0.8 {
				ps[i].greedy = j
				break
			}
		}
		for j, o := range ps[i].outcomes {
			prob := cfg.Epsilon / float64(k)
			if j == ps[i].greedy {
				prob += 1 - cfg.Epsilon
			}
			ps[i].candidates = append(ps[i].candidates, datasets.Candidate{Model: o.Model, PredictedQuality: predicted[p.Task][j],
				ExpectedCostUSD: o.CostUSD, Probability: prob})
		}
	}
	// per user of the experiment: the hash a server logs and the arm
	var units, arms []string
	if cfg.Experiment != "" {
		units, arms = make([]string, cfg.Users), make([]string, cfg.Users)
		for u := range cfg.Users {
			unit := fmt.Sprint("user-", u)
			sum := sha256.Sum256([]byte(unit))
			units[u], arms[u] = hex.EncodeToString(sum[:8]), ArmA
			if datasets.UnitDraw(cfg.Experiment, unit) >= 0.5 {
				arms[u] = ArmB
			}
		}
	}
	type files struct {
		d *datasets.Writer[datasets.DecisionRecord]
		o *datasets.Writer[datasets.OutcomeRecord]
		n int
	}
	open := map[string]*files{} // by replica and hour
	seq := make([]int, cfg.Replicas)
	closeAll := func() error {
		for key, f := range open {
			if err := f.d.Close(); err != nil {
				return err
			}
			if err := f.o.Close(); err != nil {
				return err
			}
			delete(open, key)
		}
		return nil
	}
	defer func() {
		for _, f := range open {
			f.d.Abort()
			f.o.Abort()
		}
	}()
	get := func(r int, at time.Time) (*files, error) {
		hour := at.Truncate(time.Hour)
		key := fmt.Sprint(r, hour.Unix())
		if f := open[key]; f != nil && f.n < rowsPerFile {
			return f, nil
		} else if f != nil {
			if err := f.d.Close(); err != nil {
				return nil, err
			}
			if err := f.o.Close(); err != nil {
				return nil, err
			}
		}
		seq[r]++
		part := filepath.Join(dir, "dt="+hour.Format("2006-01-02"), "hour="+hour.Format("15"))
		if err := os.MkdirAll(part, 0o755); err != nil {
			return nil, err
		}
		writer := fmt.Sprint("replica", r)
		d, err := datasets.NewWriter[datasets.DecisionRecord](filepath.Join(part, datasets.LogFileName(datasets.DecisionLogPrefix, hour, writer, seq[r])+".parquet"))
		if err != nil {
			return nil, err
		}
		o, err := datasets.NewWriter[datasets.OutcomeRecord](filepath.Join(part, datasets.LogFileName(datasets.OutcomeLogPrefix, hour, writer, seq[r])+".parquet"))
		if err != nil {
			d.Abort()
			return nil, err
		}
		f := &files{d: d, o: o}
		open[key] = f
		st.Files += 2
		return f, nil
	}
	step := 24 * time.Hour / time.Duration(cfg.Decisions)
	var late []datasets.OutcomeRecord // written with the next hour's files
	lastHour := cfg.Start.Truncate(time.Hour)
	for i := range cfg.Decisions {
		at := cfg.Start.Add(time.Duration(i) * step)
		if h := at.Truncate(time.Hour); h.After(lastHour) {
			// a new hour: the hour's files end, late outcomes land in the new ones
			if err := closeAll(); err != nil {
				return st, err
			}
			lastHour = h
			for _, o := range late {
				f, err := get(0, at)
				if err != nil {
					return st, err
				}
				if err := f.o.Write(o); err != nil {
					return st, err
				}
			}
			late = late[:0]
		}
		r := i % cfg.Replicas
		f, err := get(r, at)
		if err != nil {
			return st, err
		}
		p := &ps[rng.Intn(len(ps))]
		chosen, prop := p.greedy, 1-cfg.Epsilon+cfg.Epsilon/float64(k)
		if rng.Float64() < cfg.Epsilon {
			if chosen = rng.Intn(k); chosen != p.greedy {
				prop = cfg.Epsilon / float64(k)
			}
		}
		id := fmt.Sprintf("replica%d-%x", r, i)
		d := datasets.DecisionRecord{DecisionID: id, Time: at, Prompt: p.text, PromptSHA256: p.sha, Task: p.task,
			Policy: "default", PolicyVersion: "1", QualityBar: 0.8, Candidates: p.candidates, Chosen: models[chosen], Propensity: prop,
			InputTokens: int64(len(p.text) / 4)}
		if units != nil {
			u := int(uint64(i) * 2654435761 % uint64(cfg.Users)) // users take turns in no visible order
			d.Experiment, d.Arm, d.UnitHash = cfg.Experiment, arms[u], units[u]
		}
		if err := f.d.Write(d); err != nil {
			return st, err
		}
		f.n++
		st.Decisions++
		if f.n%16384 == 0 { // row groups of 16,384: a writer's memory stays bounded
			if err := f.d.Flush(); err != nil {
				return st, err
			}
			if err := f.o.Flush(); err != nil {
				return st, err
			}
		}
		u := rng.Float64()
		if u < 0.05 {
			st.Unanswered++
			continue
		}
		truth := p.outcomes[chosen]
		o := datasets.OutcomeRecord{DecisionID: id, Model: truth.Model, Quality: truth.Quality, InputTokens: truth.InputTokens,
			OutputTokens: truth.OutputTokens, CostUSD: truth.CostUSD, Source: datasets.SourceOnline, Time: at.Add(2 * time.Second)}
		if u < 0.07 {
			o.Time = at.Add(time.Hour)
			late = append(late, o)
			st.Late++
		} else if err := f.o.Write(o); err != nil {
			return st, err
		}
		st.Outcomes++
		if rng.Float64() < 0.1 {
			sh := p.outcomes[(chosen+1+rng.Intn(k-1))%k]
			if err := f.o.Write(datasets.OutcomeRecord{DecisionID: id, Model: sh.Model, Quality: sh.Quality, InputTokens: sh.InputTokens,
				OutputTokens: sh.OutputTokens, CostUSD: sh.CostUSD, Source: datasets.SourceShadow, Time: at.Add(3 * time.Second)}); err != nil {
				return st, err
			}
			st.Shadow++
		}
	}
	if len(late) > 0 { // the last hour's late outcomes, in a file of their own
		f, err := get(0, lastHour.Add(time.Hour))
		if err != nil {
			return st, err
		}
		if err := f.o.Write(late...); err != nil {
			return st, err
		}
	}
	return st, closeAll()
}
