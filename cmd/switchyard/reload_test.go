package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Twenty valid reloads of a production-size predictor (alternating between
// two, so each is a real swap) while clients route and send feedback: no
// request is refused or fails, and the server's resident memory never goes
// above 1.5 times what it was before the reloads (a replaced predictor is
// released when its last request is done).
func TestValidReloadsUnderLoadRefuseNothingAndKeepMemory(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	data := generateData(t, 1, 3000)
	models := make([]string, 2)
	for i := range models {
		models[i], _ = trainModel(t, data, "--seed", strconv.Itoa(i+1), "--epochs", "2")
	}
	serving := filepath.Join(dir, "predictor.onnx")
	install := func(i int) { // atomically, as a deployment would
		b, err := os.ReadFile(models[i])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(serving+".new", b, 0o644))
		require.NoError(t, os.Rename(serving+".new", serving))
	}
	install(0)
	keyFile := filepath.Join(dir, "admin.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("admin-secret\n"), 0o600))
	// The defaults, but for the scheduler-delay shedder: it answers to the
	// whole machine's load, which under `go test ./...` includes the other
	// packages' tests, and this test is about what reloads do. (With the
	// shedder on, on a machine running nothing else, four of four runs
	// refused nothing either: docs/results/lose-nothing.md.)
	cmd, base := startServeUnder(t, nil, "--model", serving, "--catalogue", filepath.Join(data, "catalogue.csv"),
		"--logs", filepath.Join(dir, "logs"), "--admin-key-file", keyFile, "--shed-queue-delay", "0")

	var sent, refused, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(base+"/v1/route", "application/json",
					strings.NewReader(fmt.Sprintf(`{"prompt":"client %d request %d: summarise the quarterly report"}`, w, i)))
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				case resp.StatusCode != http.StatusOK:
					failed.Add(1)
				}
			}
		}(w)
	}
	time.Sleep(2 * time.Second) // warm: the heap at its working size
	rssMB := func() float64 {
		rss, _, err := procMemoryMB(cmd.Process.Pid)
		require.NoError(t, err)
		return rss
	}
	before := rssMB()
	peak := before
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				if r := rssMB(); r > peak {
					peak = r
				}
			}
		}
	}()
	for i := 0; i < 20; i++ {
		install((i + 1) % 2)
		req, _ := http.NewRequest(http.MethodPost, base+"/admin/reload", nil)
		req.Header.Set("Authorization", "Bearer admin-secret")
		resp, err := client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	<-sampling
	stopServe(t, cmd)
	t.Logf("%d requests, %d refused, %d failed; resident memory %.0f MB before the reloads, at most %.0f MB during them",
		sent.Load(), refused.Load(), failed.Load(), before, peak)
	assert.Greater(t, sent.Load(), int64(1000), "the load did not get going")
	assert.Zero(t, refused.Load(), "requests answered 429 during valid reloads")
	assert.Zero(t, failed.Load(), "requests failed during valid reloads")
	assert.LessOrEqual(t, peak, 1.5*before, "resident memory during the reloads")
}
