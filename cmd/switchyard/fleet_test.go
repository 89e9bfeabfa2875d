package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"switchyard/datasets/logroot/logroottest"
	"switchyard/serving/fleet/fleettest"
)

// roundRobin is the test's load balancer: each request goes to the next
// replica, and to the one after when a replica does not answer (killed).
type roundRobin struct {
	mu       sync.Mutex
	backends []string
	next     atomic.Uint64
	client   *http.Client
}

func (lb *roundRobin) set(i int, base string) {
	lb.mu.Lock()
	lb.backends[i] = base
	lb.mu.Unlock()
}

func (lb *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lb.mu.Lock()
	backends := append([]string(nil), lb.backends...)
	lb.mu.Unlock()
	start := lb.next.Add(1)
	for k := range backends {
		base := backends[(start+uint64(k))%uint64(len(backends))]
		req, err := http.NewRequest(r.Method, base+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header = r.Header.Clone()
		resp, err := lb.client.Do(req)
		if err != nil {
			continue // a replica that is down: the next one
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
		return
	}
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

// Three replicas behind a round-robin load balancer share one Redis and
// one log folder: clients route through one replica and send feedback
// through the next, one replica is killed with SIGKILL mid-run and
// restarted, and every acknowledged decision and feedback is in the shared
// logs exactly once; feedback for decisions made before the kill is
// accepted after it through any replica.
func TestFleetBehindALoadBalancerLosesNothingWhenAReplicaIsKilled(t *testing.T) {
	skipSlow(t)
	data, model := trained(t)
	redis := fleettest.Start(t)
	logs := t.TempDir()
	args := func(k int) []string {
		return []string{"--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--logs", logs, "--scorer", "go",
			"--redis", redis.URL, "--writer-id", fmt.Sprint("replica", k)}
	}
	lb := &roundRobin{backends: make([]string, 3), client: &http.Client{Timeout: 10 * time.Second}}
	cmds := make([]*exec.Cmd, 3)
	for k := range cmds {
		var base string
		cmds[k], base = startServe(t, args(k)...)
		lb.set(k, base)
	}
	front := httptest.NewServer(lb)
	defer front.Close()

	a := newAcks()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { a.drive(front.URL, 8, 1<<20, stop); close(done) }()
	waitFeedback := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, got := a.counts(); got >= n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("the load did not reach %d acknowledged feedbacks", n)
	}
	waitFeedback(300)
	require.NoError(t, cmds[1].Process.Signal(syscall.SIGKILL))
	_ = cmds[1].Wait()
	_, before := a.counts()
	waitFeedback(before + 200) // the other two carry the load
	var base string
	cmds[1], base = startServe(t, args(1)...)
	lb.set(1, base)
	_, before = a.counts()
	waitFeedback(before + 300)
	close(stop)
	<-done

	// feedback for every decision still without one, through the balancer
	a.mu.Lock()
	late := a.unfed
	a.unfed = nil
	a.mu.Unlock()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, id := range late {
		code, err := feedbackOnce(client, front.URL, id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "late feedback for decision %s", id)
		a.mu.Lock()
		a.feedback[id] = true
		a.mu.Unlock()
	}
	for _, cmd := range cmds {
		stopServe(t, cmd)
	}
	nd, nf := a.counts()
	t.Logf("%d decisions and %d feedbacks acknowledged through three replicas, one killed and restarted", nd, nf)
	checkLogs(t, logs, a)
}

// Two replicas keep their logs in one bucket of an S3-compatible server on
// loopback: each writes its write-ahead log and fresh Parquet files into a
// staging folder of its own and uploads the finished files, and ope reads
// all of them from the bucket.
func TestFleetLogsInABucket(t *testing.T) {
	skipSlow(t)
	data, model := trained(t)
	root := logroottest.S3(t, "fleet-logs")
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // where readers fetch the bucket's files to
	client := &http.Client{Timeout: 10 * time.Second}
	for k := range 2 {
		cmd, base := startServe(t, "--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--scorer", "go",
			"--logs", root, "--staging", t.TempDir(), "--writer-id", fmt.Sprint("replica", k))
		for i := range 20 {
			resp, err := client.Post(base+"/v1/route", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"replica %d question %d"}`, k, i)))
			require.NoError(t, err)
			var r struct {
				DecisionID string `json:"decision_id"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
			resp.Body.Close()
			code, err := feedbackOnce(client, base, r.DecisionID)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
		}
		stopServe(t, cmd) // the last files are uploaded at stop
	}
	decisions, outcomes, err := readLogs(context.Background(), root)
	require.NoError(t, err)
	require.Len(t, decisions, 40)
	require.Len(t, outcomes, 40)
	out, err := run(t, "ope", "--logs", root, "--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--scorer", "go")
	require.NoError(t, err, out)
	require.Contains(t, out, "logs: 40 decisions, 40 with an outcome of the chosen model")
}
