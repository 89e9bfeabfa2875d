package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

// acks records what a server acknowledged: decisions answered with 200 and
// feedback answered with 200.
type acks struct {
	mu        sync.Mutex
	decisions map[string]bool
	feedback  map[string]bool
	unfed     []string // decisions without feedback yet
}

func newAcks() *acks { return &acks{decisions: map[string]bool{}, feedback: map[string]bool{}} }

// drive sends route requests, and feedback for every other decision, from
// workers clients until stop is closed or n requests each; it returns when
// they have all stopped.
func (a *acks) drive(base string, workers, n int, stop <-chan struct{}) {
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, ok := routeOnce(client, base, fmt.Sprintf(`{"prompt":"worker %d request %d: summarise the memo"}`, w, i))
				if !ok {
					return // the server is gone
				}
				a.mu.Lock()
				a.decisions[id] = true
				if i%2 == 1 {
					a.unfed = append(a.unfed, id)
					a.mu.Unlock()
					continue
				}
				a.mu.Unlock()
				if code, err := feedbackOnce(client, base, id); err != nil {
					return
				} else if code == http.StatusOK {
					a.mu.Lock()
					a.feedback[id] = true
					a.mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
}

func (a *acks) counts() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.decisions), len(a.feedback)
}

func routeOnce(client *http.Client, base, body string) (string, bool) {
	resp, err := client.Post(base+"/v1/route", "application/json", strings.NewReader(body))
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var d struct {
		DecisionID string `json:"decision_id"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&d) != nil || d.DecisionID == "" {
		return "", false // not acknowledged (a body cut by the kill)
	}
	return d.DecisionID, true
}

func feedbackOnce(client *http.Client, base, id string) (int, error) {
	resp, err := client.Post(base+"/v1/feedback", "application/json",
		strings.NewReader(fmt.Sprintf(`{"decision_id":%q,"quality":0.75,"output_tokens":42}`, id)))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// checkLogs asserts that every acknowledged decision and feedback is in the
// Parquet logs exactly once.
func checkLogs(t *testing.T, logs string, a *acks) {
	t.Helper()
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	dcount, ocount := map[string]int{}, map[string]int{}
	for _, d := range decisions {
		dcount[d.DecisionID]++
	}
	for _, o := range outcomes {
		ocount[o.DecisionID]++
	}
	missing := 0
	for id := range a.decisions {
		if dcount[id] != 1 {
			missing++
		}
	}
	assert.Zero(t, missing, "of %d acknowledged decisions, %d are not in the decision log exactly once", len(a.decisions), missing)
	missing = 0
	for id := range a.feedback {
		if ocount[id] != 1 {
			missing++
		}
	}
	assert.Zero(t, missing, "of %d acknowledged feedbacks, %d are not in the outcome log exactly once", len(a.feedback), missing)
	for id, n := range dcount {
		assert.Equal(t, 1, n, "decision %s logged %d times", id, n)
	}
	for id, n := range ocount {
		assert.Equal(t, 1, n, "outcome %s logged %d times", id, n)
	}
}

// A second server on a folder a live server uses refuses to start, on
// another port and on the same one, naming the holder, and touches nothing:
// every decision and feedback the first acknowledged is in its logs after it
// stops.
func TestASecondServerOnTheSameLogsRefusesAndLosesNothing(t *testing.T) {
	data, model := trained(t)
	logs := t.TempDir()
	args := []string{"--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--logs", logs, "--scorer", "go"}
	first, base := startServe(t, args...)
	a := newAcks()
	a.drive(base, 4, 50, nil)

	port := strings.TrimPrefix(base, "http://")
	for _, addr := range []string{"127.0.0.1:0", port} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, binary, append([]string{"serve", "--addr", addr}, args...)...).CombinedOutput()
		cancel()
		require.Error(t, err, "a second server on %s must not start: %s", addr, out)
		assert.Contains(t, string(out), "log folder is in use", addr)
		assert.Contains(t, string(out), "process "+strconv.Itoa(first.Process.Pid), "the error names the holder")
	}
	a.drive(base, 4, 50, nil) // the first server is unharmed
	var rd struct{ Status string }
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rd))
	resp.Body.Close()
	assert.Equal(t, "ready", rd.Status)

	stopServe(t, first)
	nd, nf := a.counts()
	require.Equal(t, 400, nd)
	require.Equal(t, 200, nf)
	checkLogs(t, logs, a)
}

// Several clients route and send feedback while the server is killed with
// SIGKILL three times and restarted: every acknowledged decision and
// feedback is in the logs exactly once, feedback for a decision made before
// a kill is accepted after it, and training from the logs uses every
// acknowledged outcome.
func TestKilledThreeTimesLosesNoAcknowledgedDecisionOrFeedback(t *testing.T) {
	skipSlow(t)
	data, model := trained(t)
	logs := t.TempDir()
	args := []string{"--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--logs", logs, "--scorer", "go"}
	a := newAcks()
	client := &http.Client{Timeout: 5 * time.Second}
	for kill := 0; kill < 3; kill++ {
		cmd, base := startServe(t, args...)
		// feedback for decisions made before the last kill is still accepted
		a.mu.Lock()
		late := a.unfed
		a.unfed = nil
		a.mu.Unlock()
		for i, id := range late {
			if i >= 50 {
				break
			}
			code, err := feedbackOnce(client, base, id)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, "feedback for decision %s made before the kill", id)
			a.mu.Lock()
			a.feedback[id] = true
			a.mu.Unlock()
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { a.drive(base, 8, 1<<20, stop); close(done) }()
		_, before := a.counts()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, n := a.counts(); n >= before+150 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		close(stop)
		<-done
	}
	cmd, _ := startServe(t, args...)
	stopServe(t, cmd)
	nd, nf := a.counts()
	require.Greater(t, nf, 450, "the load did not get going")
	t.Logf("%d decisions and %d feedbacks acknowledged across three kills", nd, nf)
	checkLogs(t, logs, a)

	out, err := run(t, "train", "--logs", logs, "--catalogue", filepath.Join(data, "catalogue.csv"), "--out", t.TempDir(),
		"--epochs", "1", "--dim", "8", "--hidden", "8", "--buckets", "4096")
	require.NoError(t, err, out)
	m := regexp.MustCompile(`logs: (\d+) examples joined`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	used, _ := strconv.Atoi(m[1])
	_, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	// outcomes stored just before a kill but never acknowledged count too
	assert.Equal(t, len(outcomes), used, "training uses every stored outcome: %s", out)
	assert.GreaterOrEqual(t, used, nf, "training uses every acknowledged outcome: %s", out)
	assert.Contains(t, out, "; 0 outcomes without decision")
	assert.Contains(t, out, fmt.Sprintf("tables: %d examples, %d used", used, used), out)

	// the same examples through the training table, joined on the embedded engine
	tbl := filepath.Join(t.TempDir(), "table.parquet")
	out, err = run(t, "join", "--logs", logs, "--out", tbl, "--threads", "2")
	require.NoError(t, err, out)
	assert.Contains(t, out, fmt.Sprintf(": %d examples from ", used), out)
	trainTable := func(more ...string) string {
		out, err := run(t, append([]string{"train", "--table", tbl, "--catalogue", filepath.Join(data, "catalogue.csv"), "--out", t.TempDir(),
			"--epochs", "2", "--dim", "8", "--hidden", "8", "--buckets", "4096"}, more...)...)
		require.NoError(t, err, out)
		assert.Contains(t, out, fmt.Sprintf("tables: %d examples, %d used", used, used), out)
		return regexp.MustCompile(`predictor p-[0-9a-f]+`).FindString(out)
	}
	streamed := trainTable()
	require.NotEmpty(t, streamed)
	assert.Equal(t, streamed, trainTable("--cache"), "the examples held in memory train the streamed model")
}
