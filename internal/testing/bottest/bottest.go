// Package bottest runs the gitops-bot binary as it is deployed — a GitHub
// App served by the GitHub fake, previewing on a real API server — for the
// end-to-end tests and the benchmarks.
package bottest

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// Bot is a running gitops-bot process.
type Bot struct {
	// Addr is its listen address (host:port on 127.0.0.1).
	Addr string
	// Pid is its process id.
	Pid int
}

// Options say what the bot serves.
type Options struct {
	// Binary is the gitops-bot executable.
	Binary string
	// WebhookSecret is the GitHub webhook secret, passed through the
	// environment as the deployed bot gets it.
	WebhookSecret string
	// Repository is the one repository on the allowlist, owner/name.
	Repository string
	// Kubeconfig reaches the cluster named "test", the default cluster.
	Kubeconfig string
	// Logs receives the bot's log (nil: kept in a file in the test's
	// temporary folder, printed when the test fails).
	Logs io.Writer
	// Env is added to the bot's environment (e.g. GOMEMLIMIT).
	Env []string
	// State, when set, keeps the bot's state (leader election, locks) in
	// Leases of this namespace of the cluster "test", so that several bots
	// can run as replicas; Identity names this one (default: host name and
	// process id).
	State, Identity string
	// ReconcileInterval defaults to 1h (no reconcile after the first).
	ReconcileInterval time.Duration
	// Config is appended to the bot's YAML config (top-level keys).
	Config string
	// ColdStart empties the kernel's page cache first (root only), so the
	// binary starts as a freshly scheduled pod's would, not from the pages
	// `go build` just wrote.
	ColdStart bool
}

// extra is the config after the fixed part: the state block and Config.
func (o Options) extra() string {
	var b strings.Builder
	if o.State != "" {
		fmt.Fprintf(&b, "state: {cluster: test, namespace: %q, identity: %q}\n", o.State, o.Identity)
	}
	b.WriteString(o.Config)
	return b.String()
}

// Start runs the bot as a GitHub App of fake, waits until /readyz answers,
// and stops it (SIGINT, then SIGKILL after 20 s) when tb ends.
func Start(tb testing.TB, fake *githubfake.Server, opts Options) *Bot {
	tb.Helper()
	dir := tb.TempDir()
	key := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(key, fake.KeyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `listen: %q
github:
  baseURL: %q
  appID: %d
  privateKeyFile: %q
  webhookSecret: {env: WEBHOOK_SECRET}
  repositories: [%s]
clusters:
  test: {kubeconfig: %q}
defaultCluster: test
cacheDir: %q
reconcileInterval: %s
%s`, addr, fake.URL(), fake.AppID, key, opts.Repository, opts.Kubeconfig, filepath.Join(dir, "cache"), cmp.Or(opts.ReconcileInterval, time.Hour), opts.extra()), 0o600); err != nil {
		tb.Fatal(err)
	}
	if opts.ColdStart {
		if err := dropPageCache(); err != nil {
			tb.Fatalf("cold start: %v (it needs root)", err)
		}
	}
	env := append([]string{"WEBHOOK_SECRET=" + opts.WebhookSecret}, opts.Env...)
	return launch(tb, opts.Binary, dir, addr, config, env, opts.Logs)
}

// freeAddr is a loopback address free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// launch runs binary with config, serving on addr (HOME and the cache in dir, env added),
// its log in dir/bot.log (and logs, if set) printed when tb fails, waits
// until /readyz answers, and stops it (SIGINT, then SIGKILL after 20 s)
// when tb ends.
func launch(tb testing.TB, binary, dir, addr, config string, env []string, logs io.Writer) *Bot {
	tb.Helper()
	logPath := filepath.Join(dir, "bot.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	var out io.Writer = logFile
	if logs != nil {
		out = io.MultiWriter(logFile, logs)
	}
	cmd := exec.Command(binary, "--config", config)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "xdg"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if tb.Failed() {
			data, _ := os.ReadFile(logPath)
			tb.Logf("gitops-bot log:\n%s", data)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &Bot{Addr: addr, Pid: cmd.Process.Pid}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("gitops-bot did not become ready in 30s")
	return nil
}

// HoldIdle opens n idle TCP connections to addr (loopback only) that send
// nothing, in connhold processes of at most perProcess connections each so
// they do not count against the test's open-file limit, and holds them
// until tb ends. It returns how many were opened.
func HoldIdle(tb testing.TB, addr string, n, perProcess int) int {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "connhold")
	build := exec.Command("go", "build", "-o", bin, "github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest/connhold")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building connhold: %v\n%s", err, out)
	}
	opened := 0
	for n > 0 {
		k := min(n, perProcess)
		n -= k
		cmd := exec.Command(bin, "-addr", addr, "-n", strconv.Itoa(k))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			tb.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		})
		var ok, failed int
		if _, err := fmt.Fscanf(stdout, "ready %d %d\n", &ok, &failed); err != nil {
			tb.Fatalf("connhold: %v", err)
		}
		opened += ok
	}
	return opened
}

// dropPageCache writes dirty pages back and empties the page cache.
func dropPageCache() error {
	if err := exec.Command("sync").Run(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}
