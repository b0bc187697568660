package render

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
)

// newTestFS makes a confined filesystem rooted at root/repo, with a secret
// next to the repository and links out of it.
func newTestFS(t *testing.T, limits Limits) (*confinedFS, string) {
	t.Helper()
	dir := writeTree(t, map[string]string{
		"secret.txt":           "top secret",
		"repo/app/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
		"repo/app/data.txt":    "0123456789",
		"repo/app/out.txt":     "->../../secret.txt",
		"repo/app/in.txt":      "->data.txt",
		"repo/outdir":          "->..",
		"repo/app/bomb.yaml":   billionLaughs(),
		"repo/app/anchor.yaml": "a: &x [1, 2]\nb: *x\n",
	})
	j, err := newJail(filepath.Join(dir, "repo"), limits)
	if err != nil {
		t.Fatal(err)
	}
	return newConfinedFS(j), filepath.Join(dir, "repo")
}

func TestConfinedFSReads(t *testing.T) {
	fs, root := newTestFS(t, Limits{})
	app := filepath.Join(root, "app")
	tests := []struct {
		name    string
		path    string
		want    string // content; "" when refused
		wantErr string
	}{
		{name: "file inside", path: filepath.Join(app, "data.txt"), want: "0123456789"},
		{name: "link inside", path: filepath.Join(app, "in.txt"), want: "0123456789"},
		{name: "anchors within bounds", path: filepath.Join(app, "anchor.yaml"), want: "a: &x [1, 2]\nb: *x\n"},
		{name: "dot-dot out", path: filepath.Join(app, "../../secret.txt"), wantErr: "not in or below"},
		{name: "absolute out", path: "/etc/hostname", wantErr: "not in or below"},
		{name: "link out", path: filepath.Join(app, "out.txt"), wantErr: "outside"},
		{name: "through a folder link out", path: filepath.Join(root, "outdir/secret.txt"), wantErr: "outside"},
		{name: "alias bomb", path: filepath.Join(app, "bomb.yaml"), wantErr: "app/bomb.yaml: document 1: YAML aliases expand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fs.ReadFile(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Errorf("read %q, want %q", got, tt.want)
				}
				f, err := fs.Open(tt.path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				data, err := io.ReadAll(f)
				if err != nil || string(data) != tt.want {
					t.Errorf("Open read %q, %v; want %q", data, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("want a refusal containing %q, got %v", tt.wantErr, err)
			}
			if strings.Contains(err.Error(), "top secret") {
				t.Errorf("error quotes the file: %v", err)
			}
			if _, err := fs.Open(tt.path); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Open: want a refusal, got %v", err)
			}
			if fs.refusal() == nil {
				t.Error("the refusal was not remembered")
			}
		})
	}
}

func TestConfinedFSQueries(t *testing.T) {
	fs, root := newTestFS(t, Limits{})
	app := filepath.Join(root, "app")
	if !fs.IsDir(app) || fs.IsDir(filepath.Join(app, "data.txt")) || fs.IsDir("/etc") || fs.IsDir(filepath.Join(root, "outdir")) {
		t.Error("IsDir answers for paths out of the root, or wrongly inside it")
	}
	if !fs.Exists(filepath.Join(app, "data.txt")) || fs.Exists("/etc/hostname") || fs.Exists(filepath.Join(app, "out.txt")) {
		t.Error("Exists answers for paths out of the root, or wrongly inside it")
	}
	if d, f, err := fs.CleanedAbs(filepath.Join(app, "in.txt")); err != nil || f != "data.txt" || !strings.HasSuffix(string(d), "repo/app") {
		t.Errorf("CleanedAbs(in.txt) = %q, %q, %v", d, f, err)
	}
	if d, f, err := fs.CleanedAbs(app); err != nil || f != "" || !strings.HasSuffix(string(d), "repo/app") {
		t.Errorf("CleanedAbs(app) = %q, %q, %v", d, f, err)
	}
	if _, _, err := fs.CleanedAbs(filepath.Join(app, "out.txt")); !errors.Is(err, ErrUnsafe) {
		t.Errorf("CleanedAbs(out.txt): want a refusal, got %v", err)
	}
	if names, err := fs.ReadDir(app); err != nil || len(names) != 6 {
		t.Errorf("ReadDir(app) = %v, %v", names, err)
	}
	if _, err := fs.ReadDir("/etc"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("ReadDir(/etc): want a refusal, got %v", err)
	}
	matches, err := fs.Glob(filepath.Join(app, "*.txt"))
	if err != nil || len(matches) != 2 {
		t.Errorf("Glob(*.txt) = %v, %v; want data.txt and in.txt, not the link out", matches, err)
	}
	if _, err := fs.Glob("/etc/*"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Glob(/etc/*): want a refusal, got %v", err)
	}
	if err := fs.Walk("/etc", nil); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Walk(/etc): want a refusal, got %v", err)
	}
}

func TestConfinedFSWritesRefused(t *testing.T) {
	fs, root := newTestFS(t, Limits{})
	p := filepath.Join(root, "new")
	_, createErr := fs.Create(p)
	for name, err := range map[string]error{
		"Create":    createErr,
		"Mkdir":     fs.Mkdir(p),
		"MkdirAll":  fs.MkdirAll(p),
		"RemoveAll": fs.RemoveAll(root),
		"WriteFile": fs.WriteFile(p, []byte("x")),
	} {
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: want a refusal, got %v", name, err)
		}
	}
	if !fs.Exists(filepath.Join(root, "app")) {
		t.Error("RemoveAll removed something")
	}
}

func TestConfinedFSCountsBytes(t *testing.T) {
	fs, root := newTestFS(t, Limits{MaxTotalBytes: 25})
	data := filepath.Join(root, "app", "data.txt")
	for range 2 {
		if _, err := fs.ReadFile(data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.ReadFile(data); !errors.Is(err, ErrUnsafe) {
		t.Errorf("third read of 10 bytes with a budget of 25: want a refusal, got %v", err)
	}
}

// TestConfinedFSBackstop builds, without the lint and with kustomize's own
// restrictions off, a kustomization that reads out of the root: the
// filesystem alone refuses.
func TestConfinedFSBackstop(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"secret.env":                  "PASSWORD=top-secret\n",
		"repo/app/kustomization.yaml": "configMapGenerator:\n- name: leak\n  envs:\n  - ../../secret.env\n- name: leak2\n  files:\n  - link.env\n",
		"repo/app/link.env":           "->../../secret.env",
	})
	root := filepath.Join(dir, "repo")
	j, err := newJail(root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fs := newConfinedFS(j)
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	_, err = krusty.MakeKustomizer(opts).Run(fs, filepath.Join(root, "app"))
	if err == nil {
		t.Fatal("kustomize read out of the root")
	}
	if !errors.Is(fs.refusal(), ErrUnsafe) {
		t.Errorf("no refusal remembered; kustomize said %v", err)
	}
	if strings.Contains(err.Error(), "top-secret") {
		t.Errorf("error quotes the secret: %v", err)
	}
}
