// Package fleettest runs a real redis-server for a test: on a free loopback
// port, its data in a folder of the test's, stopped when the test ends. It
// can be stopped and started again on the same port and data, to test an
// outage. `make redis` installs Debian's redis-server package.
package fleettest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Redis is a running redis-server.
type Redis struct {
	URL  string // redis://127.0.0.1:port
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// Start runs a redis-server with an append-only file (fsync every second,
// as a production Redis keeps its data across a restart) and waits until it
// answers.
func Start(t testing.TB) *Redis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	require.NoError(t, err, "the fleet tests need a real redis-server: run `make redis` (Debian's redis-server package)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	r := &Redis{URL: "redis://" + addr, Addr: addr, dir: t.TempDir()}
	r.start(t, path)
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *Redis) start(t testing.TB, path string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command(path, "--bind", "127.0.0.1", "--port", port, "--dir", r.dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no", "--loglevel", "warning")
	require.NoError(t, r.cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(r.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			r.stop()
			t.Fatalf("redis-server on %s does not answer: %v", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("answered %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Redis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Stop kills the server (as a crash would: what it had not written to its
// append-only file is lost, at most the last second).
func (r *Redis) Stop() { r.stop() }

// Restart starts the server again on the same port and data.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	require.NoError(t, err)
	r.start(t, path)
}
