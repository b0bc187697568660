// Command benchdiff is the Go side of hack/bench-diff.sh: it runs the test
// control plane, writes and applies the benchmark tree, and is the "raw
// limit" the live diff is measured against.
//
//	benchdiff serve -kubeconfig FILE            # kube-apiserver + etcd until SIGTERM
//	benchdiff gen   -out DIR -namespace NS -n 300
//	benchdiff apply -kubeconfig FILE -dir DIR   # SSA as kubectl-gitops, 16 at a time
//	benchdiff raw   -kubeconfig FILE -dir DIR   # SSA dry-run PATCHes, 16 at a time, nothing else
//	benchdiff profile -o cpu.pprof -- diff DIR --kubeconfig FILE  # kubectl gitops in-process, CPU-profiled
//
// Everything talks to 127.0.0.1 only.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
	"github.com/kubectl-gitops/kubectl-gitops/plugin"
)

const concurrency = 16

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchdiff serve|gen|apply|raw [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "gen":
		err = gen(args)
	case "apply":
		err = patchAll(args, false)
	case "raw":
		err = patchAll(args, true)
	case "profile":
		err = profile(args)
	default:
		err = fmt.Errorf("unknown command %q: use serve, gen, apply or raw", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdiff:", err)
		os.Exit(1)
	}
}

// serve starts kube-apiserver and etcd, writes an admin kubeconfig and
// stays up until SIGINT or SIGTERM.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "where to write the kubeconfig")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := testenv.AssetsDir()
	if dir == "" {
		return errors.New("kube-apiserver and etcd not found: run hack/test-assets.sh and set KUBEBUILDER_ASSETS")
	}
	te := &envtest.Environment{BinaryAssetsDirectory: dir, ControlPlaneStartTimeout: time.Minute, ControlPlaneStopTimeout: 30 * time.Second}
	if _, err := te.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer te.Stop()
	user, err := te.ControlPlane.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	// Written whole under another name, then renamed: the script waits
	// for the file to appear.
	if err := os.WriteFile(*kubeconfig+".tmp", data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(*kubeconfig+".tmp", *kubeconfig); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// gen writes n ConfigMaps and n Deployments, one file each.
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write")
	ns := fs.String("namespace", "bench", "namespace of the objects")
	n := fs.Int("n", 300, "objects of each kind")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for i := range *n {
		cm := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-%03[1]d
  namespace: %[2]s
  labels: {app.kubernetes.io/name: app-%03[1]d, app.kubernetes.io/part-of: bench}
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "search,checkout,recommendations"
  config.yaml: |
    server:
      port: 8080
      timeout: 30s
    upstream: http://app-%03[1]d-backend.%[2]s.svc:9000
`, i, *ns)
		deploy := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%03[1]d
  namespace: %[2]s
  labels: {app.kubernetes.io/name: app-%03[1]d, app.kubernetes.io/part-of: bench}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: app-%03[1]d}
  template:
    metadata:
      labels: {app.kubernetes.io/name: app-%03[1]d}
    spec:
      containers:
      - name: app
        image: ghcr.io/example/app:1.4.%[1]d
        ports: [{name: http, containerPort: 8080}]
        envFrom: [{configMapRef: {name: settings-%03[1]d}}]
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 128Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
`, i, *ns)
		if err := os.WriteFile(filepath.Join(*out, fmt.Sprintf("settings-%03d.yaml", i)), []byte(cm), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, fmt.Sprintf("app-%03d.yaml", i)), []byte(deploy), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// object is one file of the tree, ready to send.
type object struct {
	path string // the request path
	body []byte // JSON
	name string
}

// resources maps the tree's kinds to their REST paths: the raw limit does
// no discovery.
var resources = map[string]string{
	"v1/ConfigMap":       "/api/v1/namespaces/%s/configmaps/%s",
	"apps/v1/Deployment": "/apis/apps/v1/namespaces/%s/deployments/%s",
	"v1/Namespace":       "/api/v1/namespaces/%[2]s",
}

func load(dir string) ([]object, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := make([]object, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		body, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal(data, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		format, ok := resources[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: kind %s/%s is not in the benchmark's list", f, head.APIVersion, head.Kind)
		}
		out = append(out, object{path: fmt.Sprintf(format, head.Metadata.Namespace, head.Metadata.Name), body: body, name: head.Metadata.Name})
	}
	return out, nil
}

// patchAll server-side applies every object of -dir as kubectl-gitops, 16
// at a time: for real, or (dryRun) as the raw limit of a live diff — one
// dry-run PATCH per object, the response read and dropped.
func patchAll(args []string, dryRun bool) error {
	fs := flag.NewFlagSet("patch", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the control plane")
	dir := fs.String("dir", "", "the tree")
	namespace := fs.String("namespace", "", "create this namespace first (apply only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	objs, err := load(*dir)
	if err != nil {
		return err
	}
	if *namespace != "" && !dryRun {
		ns := object{path: fmt.Sprintf(resources["v1/Namespace"], "", *namespace), name: *namespace,
			body: []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"` + *namespace + `"}}`)}
		objs = append([]object{ns}, objs...)
	}
	query := url.Values{"fieldManager": {"kubectl-gitops"}}
	if dryRun {
		query.Set("dryRun", "All")
		query.Set("force", "false")
	} else {
		query.Set("force", "true")
	}
	loaded := time.Now()
	ctx := context.Background()
	send := func(o object) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, strings.TrimSuffix(cfg.Host, "/")+o.path+"?"+query.Encode(), bytes.NewReader(o.body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/apply-patch+yaml")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s: %s: %s", o.name, resp.Status, body)
		}
		return nil
	}
	if !dryRun && *namespace != "" {
		if err := send(objs[0]); err != nil {
			return err
		}
		objs = objs[1:]
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	errs := make([]error, len(objs))
	for i, o := range objs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = send(o)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	end := time.Now()
	if dryRun {
		// For the script: the PATCH loop alone, without start-up and
		// reading the files.
		fmt.Printf("loop_ms %d total_ms %d objects %d\n", end.Sub(loaded).Milliseconds(), end.Sub(start).Milliseconds(), len(objs))
	}
	return nil
}

// profile runs `kubectl gitops ARGS` in this process under the CPU profiler,
// to find the hot spots of a live diff: go tool pprof -top FILE.
func profile(args []string) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	out := fs.String("o", "cpu.pprof", "where to write the CPU profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start := time.Now()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: io.Discard, ErrOut: os.Stderr}
	code := plugin.Execute(context.Background(), streams, fs.Args())
	pprof.StopCPUProfile()
	fmt.Fprintf(os.Stderr, "exit %d in %v\n", code, time.Since(start).Round(time.Millisecond))
	return nil
}
