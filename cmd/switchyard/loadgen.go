package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"switchyard/serving/loadgen"
)

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", stderr)
	target := fs.String("url", "http://127.0.0.1:8080/v1/route", "endpoint to load; only loopback hosts (127.0.0.1, ::1, localhost) are accepted")
	sizes := fs.String("prompt-bytes", "1024", "comma-separated prompt sizes in bytes; bodies of every size are sent round-robin in each run")
	conns := fs.Int("connections", 64, "keep-alive connections (requests in flight at most)")
	rates := fs.String("rates", "", "comma-separated request rates for open-loop runs: requests/s (1000,5000) or multiples of the closed-loop maximum measured first (0.5x,2x); empty: none")
	duration := fs.Duration("duration", 5*time.Second, "measured time of each run")
	warmup := fs.Duration("warmup", time.Second, "time sent before each run's measurement starts")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	closed := fs.Bool("closed", true, "run one closed-loop test at maximum throughput first")
	headers := loadgenHeaders{}
	fs.Var(headers, "header", "extra request header \"Key: Value\" (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	bodies, err := loadgenBodies(splitList(*sizes))
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	// a run is a rate in requests/s, or a multiple of the closed-loop
	// maximum (relative); the closed-loop run itself is {0, false}
	type loadRun struct {
		rate     float64
		relative bool
	}
	var runs []loadRun
	if *closed {
		runs = append(runs, loadRun{})
	}
	for _, s := range splitList(*rates) {
		num, rel := strings.CutSuffix(s, "x")
		r, err := strconv.ParseFloat(num, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return fmt.Errorf("loadgen: --rates: %q is neither a positive number of requests per second nor a positive multiple of the maximum like 0.5x", s)
		}
		if rel && !*closed {
			return fmt.Errorf("loadgen: --rates: %q is relative to the closed-loop maximum, which --closed=false does not measure", s)
		}
		runs = append(runs, loadRun{r, rel})
	}
	if len(runs) == 0 {
		return errors.New("loadgen: nothing to run: give --rates or leave --closed on")
	}
	log := newLogger(stderr, false)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	var notes []string
	header := false
	var maxThroughput float64
	for _, lr := range runs {
		rate := lr.rate
		mode, want := "closed", "max"
		if lr.relative {
			rate = lr.rate * maxThroughput
			if rate <= 0 {
				return fmt.Errorf("loadgen: rate %gx: the closed-loop run answered nothing, so there is no maximum to scale", lr.rate)
			}
			mode, want = "open", fmt.Sprintf("%gx = %.0f/s", lr.rate, rate)
		} else if rate > 0 {
			mode, want = "open", strconv.FormatFloat(rate, 'f', -1, 64)+"/s"
		}
		log.Info("load run", "mode", mode, "rate", want, "connections", *conns, "duration", *duration, "warmup", *warmup)
		res, err := loadgen.Run(ctx, loadgen.Config{
			URL: *target, Bodies: bodies, Header: http.Header(headers), Connections: *conns,
			Rate: rate, Duration: *duration, Warmup: *warmup, Timeout: *timeout,
		})
		if res != nil && mode == "closed" {
			maxThroughput = res.Throughput
		}
		if res != nil {
			if !header {
				fmt.Fprintln(tw, "mode\ttarget rate\tsent\tok\terrors\tthroughput\tp50\tp90\tp99\tp99.9\tmax\ttimer late p99\t")
				header = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.0f/s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", mode, want, res.Sent, res.OK, res.Errors,
				res.Throughput, fmtLatency(res.P50), fmtLatency(res.P90), fmtLatency(res.P99), fmtLatency(res.P999), fmtLatency(res.Max),
				fmtLatency(res.TimerLateP99))
			if other := len(res.Status) - countOK(res.Status); other > 0 {
				notes = append(notes, fmt.Sprintf("%s %s: %s", mode, want, res))
			}
		}
		if err != nil {
			tw.Flush()
			return fmt.Errorf("loadgen: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("loadgen: write table: %w", err)
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, "non-2xx answers:", n)
	}
	return nil
}

// countOK is how many of the statuses in a status count map are 2xx.
func countOK(status map[int]int) int {
	n := 0
	for c := range status {
		if c >= 200 && c <= 299 {
			n++
		}
	}
	return n
}

// fmtLatency prints d with three significant digits or so; 0 (nothing
// answered) as "-".
func fmtLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// loadgenSentences returns varied English sentences, of the kinds users send
// a router, that prompt bodies are cut from.
func loadgenSentences() []string {
	return []string{
		"Summarise the following customer email in two sentences and list any action items it asks for.",
		"Write a Python function that parses an ISO 8601 timestamp and returns the number of seconds since the epoch.",
		"Explain, as if to a first-year student, why the sum of the angles of a triangle is one hundred and eighty degrees.",
		"Our quarterly revenue grew by twelve percent while operating costs rose by four percent; what happened to the margin?",
		"Translate this paragraph into French, keeping the formal tone and the product names unchanged.",
		"The service returns a timeout error after thirty seconds whenever the database is under heavy load.",
		"Draft a polite reply declining the meeting invitation and proposing two alternative times next week.",
		"Which of these three sorting algorithms is stable, and what is the worst-case running time of each?",
		"Give me a short, upbeat product description for a waterproof hiking backpack with a built-in rain cover.",
		"Review this SQL query for correctness and suggest an index that would make it faster on a large table.",
	}
}

// loadgenBodies builds /v1/route bodies whose prompts have the given sizes in
// bytes, several per size with different openings so they are not identical.
func loadgenBodies(sizes []string) ([][]byte, error) {
	if len(sizes) == 0 {
		return nil, errors.New("--prompt-bytes: give at least one size")
	}
	const variants = 8
	sentences := loadgenSentences()
	var bodies [][]byte
	for _, s := range sizes {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 16<<20 {
			return nil, fmt.Errorf("--prompt-bytes: %q is not a size between 1 and %d bytes", s, 16<<20)
		}
		for v := range variants {
			var b strings.Builder
			for i := v; b.Len() < n; i++ {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(sentences[i%len(sentences)])
			}
			body, err := json.Marshal(struct {
				Prompt string `json:"prompt"`
			}{b.String()[:n]})
			if err != nil {
				return nil, fmt.Errorf("encode prompt body: %w", err)
			}
			bodies = append(bodies, body)
		}
	}
	return bodies, nil
}

// loadgenHeaders collects repeated --header "Key: Value" flags.
type loadgenHeaders http.Header

func (h loadgenHeaders) String() string {
	var parts []string
	for k, vs := range h {
		for _, v := range vs {
			parts = append(parts, k+": "+v)
		}
	}
	return strings.Join(parts, ", ")
}

func (h loadgenHeaders) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" {
		return fmt.Errorf("header %q: want \"Key: Value\"", s)
	}
	http.Header(h).Add(k, v)
	return nil
}
