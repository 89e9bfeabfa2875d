package main

// The fixtures of this package's tests and benchmarks: the switchyard
// binary they run, a small trained predictor, and a real server process.

import (
	"bufio"
	"fmt"
	"os"
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
)

// binary is the switchyard command TestMain builds for the tests to run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchyard")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build switchyard: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the switchyard binary and returns its stdout and stderr together.
func run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

// generateData writes the seeded synthetic workload to a temporary dataset
// folder.
func generateData(t testing.TB, seed, prompts int) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	out, err := run(t, "generate", "--seed", strconv.Itoa(seed), "--prompts", strconv.Itoa(prompts), "--out", data)
	require.NoError(t, err, out)
	return data
}

// trainModel trains a predictor on a dataset folder with train's flags args
// and returns its ONNX file and train's output.
func trainModel(t testing.TB, data string, args ...string) (model, out string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	out, err := run(t, append([]string{"train", "--data", data, "--out", dir}, args...)...)
	require.NoError(t, err, out)
	return filepath.Join(dir, "predictor.onnx"), out
}

// trained generates a small workload and trains a small predictor once per test.
func trained(t *testing.T) (data, model string) {
	t.Helper()
	data = generateData(t, 3, 400)
	model, out := trainModel(t, data, "--epochs", "2", "--dim", "8", "--hidden", "8", "--buckets", "4096")
	assert.Contains(t, out, "val AUC")
	assert.Regexp(t, `(?m)^\s+opus-class\s+0\.\d+\s+0\.\d+`, out, "per-model AUC and Brier")
	return data, model
}

// benchPredictor generates the `make run` workload and trains its
// production-size predictor, for the server benchmarks.
func benchPredictor(b *testing.B) (catalogue, model string) {
	data := generateData(b, 1, 6000)
	model, _ = trainModel(b, data, "--seed", "1")
	return filepath.Join(data, "catalogue.csv"), model
}

// startServe starts `switchyard serve` and returns its base URL. It does
// not shed by queueing delay (unless args ask for it): a busy test machine
// must not turn these functional checks' requests into 429s.
func startServe(t testing.TB, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return startServeUnder(t, nil, append([]string{"--shed-queue-delay", "0"}, args...)...)
}

// startServeUnder starts `switchyard serve` under a command prefix (such as
// taskset's) and returns its base URL. The server is killed when the test
// ends; stopServe stops it cleanly before.
func startServeUnder(t testing.TB, prefix []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), binary, "serve", "--addr", "127.0.0.1:0"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	var mu sync.Mutex
	var startup strings.Builder // what the server logged before it served, for a failure
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg=serving addr=(\S+)`)
		serving := false
		for sc.Scan() { // read to the end: a server blocked on its stderr would stall
			if serving {
				continue
			}
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				serving = true
				addr <- m[1]
				continue
			}
			mu.Lock()
			fmt.Fprintln(&startup, sc.Text())
			mu.Unlock()
		}
	}()
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("server did not start: %s", startup.String())
	}
	return nil, ""
}

// skipSlow skips a slow test under -short.
func skipSlow(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
}

// stopServe stops a server with SIGTERM, as a deployment would, and
// requires a clean exit.
func stopServe(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
}

// procMemoryMB is a process's resident and peak resident memory.
func procMemoryMB(pid int) (rss, hwm float64, err error) {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	found := false
	for _, l := range strings.Split(string(st), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || (f[0] != "VmRSS:" && f[0] != "VmHWM:") {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d: %s: %w", pid, l, err)
		}
		if f[0] == "VmRSS:" {
			rss, found = kb/1024, true
		} else {
			hwm = kb / 1024
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("process %d: no VmRSS in its /proc status", pid)
	}
	return rss, hwm, nil
}
