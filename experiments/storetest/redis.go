package storetest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisServer is a redis-server process started by a test on a loopback
// port, in a temporary directory, without persistence. It is killed (by
// its own PID) when the test ends.
type RedisServer struct {
	Addr string
	Port int
	dir  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartRedis starts a redis-server for t, or skips t if there is none on
// PATH (CI installs it). It never touches any other Redis.
func StartRedis(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH; install it (apt-get install redis-server) to run the Redis tests")
	}
	r := &RedisServer{dir: t.TempDir(), t: t}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pick a port: %v", err)
		}
		r.Port = port
		r.Addr = "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = r.start(bin, extraArgs); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func (r *RedisServer) start(bin string, extraArgs []string) error {
	args := []string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--protected-mode", "no", "--loglevel", "warning",
	}
	args = append(args, extraArgs...)
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.Port)))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	r.cmd = cmd
	if err := waitPing(r.Addr, 5*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("redis-server on %s did not answer: %w", r.Addr, err)
	}
	return nil
}

// Stop kills the server (by PID) and waits until its port is closed.
// Stopping a stopped server does nothing.
func (r *RedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	r.cmd = nil
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", r.Addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts the server again on the same port, empty (no
// persistence).
func (r *RedisServer) Restart(extraArgs ...string) {
	r.t.Helper()
	bin, _ := exec.LookPath("redis-server")
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger briefly
		if err = r.start(bin, extraArgs); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("restart redis-server on %s: %v", r.Addr, err)
}

// StartRedisCluster starts three redis-server masters with cluster mode on
// loopback ports, joins them with redis-cli --cluster create and waits for
// cluster_state:ok. It skips t if that is not possible.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not on PATH; needed to create a Redis Cluster")
	}
	var addrs []string
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		s := StartRedis(t, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Skipf("redis-cli --cluster create failed (%v): %s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, a := range addrs {
			host, port, _ := net.SplitHostPort(a)
			out, err := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
				break
			}
		}
		if ok {
			return addrs
		}
		if time.Now().After(deadline) {
			t.Skip("redis cluster did not reach cluster_state:ok in 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPing waits until a Redis answers PING at addr, speaking RESP by hand
// so this package needs no client library.
func waitPing(addr string, max time.Duration) error {
	deadline := time.Now().Add(max)
	var err error
	for time.Now().Before(deadline) {
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			if err == nil {
				var line string
				line, err = bufio.NewReader(c).ReadString('\n')
				if err == nil && strings.HasPrefix(line, "+PONG") {
					c.Close()
					return nil
				}
				if err == nil {
					err = fmt.Errorf("unexpected reply %q", line)
				}
			}
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}
