package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// kustomizeFixtures are the kustomizations in testdata/kustomize, each with
// a golden output <name>.golden.yaml.
var kustomizeFixtures = []struct{ name, dir string }{
	{"base", "base"},
	{"prod", "overlays/prod"},
	{"staging", "overlays/staging"},
}

const kustomizeRoot = "testdata/kustomize"

func TestKustomizeGolden(t *testing.T) {
	for _, f := range kustomizeFixtures {
		t.Run(f.name, func(t *testing.T) {
			res, err := Kustomize(context.Background(), filepath.Join(kustomizeRoot, f.dir), Options{Root: kustomizeRoot})
			if err != nil {
				t.Fatal(err)
			}
			assertGolden(t, filepath.Join(kustomizeRoot, f.name+".golden.yaml"), toYAML(t, res.Objects))
		})
	}
}

func TestKustomizeDeprecationWarnings(t *testing.T) {
	res, err := Kustomize(context.Background(), filepath.Join(kustomizeRoot, "overlays/staging"), Options{Root: kustomizeRoot})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"'bases' is deprecated", "'commonLabels' is deprecated", "'patchesStrategicMerge' is deprecated", "'patchesJson6902' is deprecated"} {
		if !strings.Contains(joined, "overlays/staging/kustomization.yaml: "+want) {
			t.Errorf("no warning %q naming the file in:\n%s", want, joined)
		}
	}
}

// TestKustomizeMatchesKubectl checks that Kustomize builds what
// `kubectl kustomize` builds, object for object and in the same order.
func TestKustomizeMatchesKubectl(t *testing.T) {
	kubectl := testenv.Tool(t, "kubectl")
	for _, f := range kustomizeFixtures {
		t.Run(f.name, func(t *testing.T) {
			dir := filepath.Join(kustomizeRoot, f.dir)
			cmd := exec.Command(kubectl, "kustomize", dir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s kustomize %s: %v\n%s", kubectl, dir, err, stderr.String())
			}
			want, err := decodeObjects("kubectl output", stdout.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			res, err := Kustomize(context.Background(), dir, Options{Root: kustomizeRoot})
			if err != nil {
				t.Fatal(err)
			}
			if got, w := ids(res.Objects), ids(want.objects); !reflect.DeepEqual(got, w) {
				t.Fatalf("objects differ from kubectl's:\n got %v\nwant %v", got, w)
			}
			for i := range want.objects {
				if !reflect.DeepEqual(res.Objects[i].Object, want.objects[i].Object) {
					t.Errorf("object %d (%s) differs from kubectl's:\n--- got\n%s--- want\n%s", i, ids(want.objects)[i],
						toYAML(t, res.Objects[i:i+1]), toYAML(t, want.objects[i:i+1]))
				}
			}
		})
	}
}

func TestKustomizeLimits(t *testing.T) {
	root := writeTree(t, map[string]string{
		"app/kustomization.yaml": "resources: [cms.yaml]\n",
		"app/cms.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
		"app/big.yaml":           strings.Repeat("#", 4096),
	})
	dir := filepath.Join(root, "app")
	if _, err := Kustomize(context.Background(), dir, Options{Root: root, Limits: Limits{MaxObjects: 1}}); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "2 objects") {
		t.Errorf("MaxObjects: want a refusal counting 2 objects, got %v", err)
	}
	if _, err := Kustomize(context.Background(), dir, Options{Root: root, Limits: Limits{MaxFileBytes: 20}}); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "larger than 20 bytes") {
		t.Errorf("MaxFileBytes: want a refusal, got %v", err)
	}
}

func TestKustomizeAliasBomb(t *testing.T) {
	root := writeTree(t, map[string]string{
		"app/kustomization.yaml": "resources: [bomb.yaml]\n",
		"app/bomb.yaml":          billionLaughs(),
	})
	_, err := Kustomize(context.Background(), filepath.Join(root, "app"), Options{Root: root})
	if err == nil {
		t.Fatal("an alias bomb rendered without error")
	}
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "app/bomb.yaml") || !strings.Contains(err.Error(), "aliases") {
		t.Errorf("want a refusal naming app/bomb.yaml, got %v", err)
	}
}

// TestKustomizeConcurrent renders the fixtures from many goroutines at once
// (RS-17); run with -race.
func TestKustomizeConcurrent(t *testing.T) {
	want := map[string][]byte{}
	for _, f := range kustomizeFixtures {
		res, err := Path(context.Background(), filepath.Join(kustomizeRoot, f.dir), Options{Root: kustomizeRoot, Namespace: "default"})
		if err != nil {
			t.Fatal(err)
		}
		want[f.name] = toYAML(t, res.Objects)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 24 {
		f := kustomizeFixtures[i%len(kustomizeFixtures)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Path(context.Background(), filepath.Join(kustomizeRoot, f.dir), Options{Root: kustomizeRoot, Namespace: "default"})
			if err != nil {
				errs <- err
				return
			}
			if got, err := objectsYAML(res.Objects); err != nil || !bytes.Equal(got, want[f.name]) {
				errs <- fmt.Errorf("%s: concurrent render differs from a serial one", f.name)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
