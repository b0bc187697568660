package render

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPlainTree(t *testing.T) {
	dir := filepath.Join("testdata", "plain", "tree")
	res, err := Plain(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Folders and files in lexical order, documents in file order, Lists
	// expanded; hidden files and folders skipped.
	wantIDs := []string{
		"StatefulSet//db",
		"Deployment//web",
		"Service//web",
		"ConfigMap//web-a",
		"ConfigMap//web-b",
		"Namespace//shop",
	}
	if got := ids(res.Objects); strings.Join(got, " ") != strings.Join(wantIDs, " ") {
		t.Errorf("objects %v, want %v", got, wantIDs)
	}
	wantWarnings := []string{"charts-values/values.yaml: no Kubernetes objects (no apiVersion/kind); ignored"}
	if strings.Join(res.Warnings, "\n") != strings.Join(wantWarnings, "\n") {
		t.Errorf("warnings %q, want %q", res.Warnings, wantWarnings)
	}
	assertGolden(t, filepath.Join("testdata", "plain", "tree.golden.yaml"), toYAML(t, res.Objects))
}

func TestPlain(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n"
	tests := []struct {
		name     string
		files    map[string]string
		path     string // rendered, relative to the root; "" for the root
		limits   Limits
		want     []string // object names, in order
		warnings []string
		wantErr  string // substring; "" for success
		unsafe   bool   // the error wraps ErrUnsafe
	}{
		{
			name:  "single file whatever its extension",
			files: map[string]string{"manifest.txt": fmt.Sprintf(cm, "a")},
			path:  "manifest.txt",
			want:  []string{"a"},
		},
		{
			name: "deterministic nested order",
			files: map[string]string{
				"b/z.yaml":   fmt.Sprintf(cm, "bz"),
				"a/b/c.yaml": fmt.Sprintf(cm, "abc"),
				"a.yaml":     fmt.Sprintf(cm, "a"),
				"a/a.yml":    fmt.Sprintf(cm, "aa"),
				"c.JSON":     `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`,
			},
			want: []string{"aa", "abc", "a", "bz", "c"},
		},
		{
			name: "files without objects warn",
			files: map[string]string{
				"empty.yaml":  "# only a comment\n",
				"mixed.yaml":  fmt.Sprintf(cm, "m") + "---\nfoo: bar\n",
				"values.yaml": "replicas: 3\n",
				"list.yaml":   "- a\n- b\n",
			},
			want: []string{"m"},
			warnings: []string{
				"empty.yaml: empty; ignored",
				"list.yaml: no Kubernetes objects (no apiVersion/kind); ignored",
				"mixed.yaml: 1 of its documents have no apiVersion/kind; those were ignored",
				"values.yaml: no Kubernetes objects (no apiVersion/kind); ignored",
			},
		},
		{
			name:    "missing name",
			files:   map[string]string{"ok.yaml": fmt.Sprintf(cm, "ok"), "sub/bad.yaml": fmt.Sprintf(cm, "x") + "---\napiVersion: v1\nkind: Secret\nmetadata: {}\ndata: {password: c2VjcmV0}\n"},
			wantErr: "sub/bad.yaml: document 2: v1 Secret has no metadata.name",
		},
		{
			name:    "invalid YAML never quotes the content",
			files:   map[string]string{"bad.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2-SECRET\n   bad: [\n"},
			wantErr: "bad.yaml: document 1: invalid YAML",
		},
		{
			name: "symlink inside the root is followed (RS-03)",
			files: map[string]string{
				"app/kept.yaml":   fmt.Sprintf(cm, "kept"),
				"app/shared":      "->../shared",
				"app/single.yaml": "->../shared/one.yaml",
				"shared/one.yaml": fmt.Sprintf(cm, "one"),
			},
			path: "app",
			want: []string{"kept", "one"},
		},
		{
			name: "symlink loop ends",
			files: map[string]string{
				"a/x.yaml": fmt.Sprintf(cm, "x"),
				"a/loop":   "->..",
			},
			want: []string{"x"},
		},
		{
			name:    "symlinked file out of the root is refused (RS-02)",
			files:   map[string]string{"app/ok.yaml": fmt.Sprintf(cm, "ok"), "app/passwd.yaml": "->/etc/passwd"},
			path:    "app",
			wantErr: "passwd.yaml",
			unsafe:  true,
		},
		{
			name:    "symlinked folder out of the root is refused (RS-02)",
			files:   map[string]string{"app/ok.yaml": fmt.Sprintf(cm, "ok"), "app/etc": "->/etc"},
			path:    "app",
			wantErr: "etc",
			unsafe:  true,
		},
		{
			name:  "links to other files out of the root are not read",
			files: map[string]string{"app/ok.yaml": fmt.Sprintf(cm, "ok"), "app/bin": "->/bin/sh", "app/dangling": "->nowhere"},
			path:  "app",
			want:  []string{"ok"},
		},
		{
			name:    "file over MaxFileBytes",
			files:   map[string]string{"big.yaml": fmt.Sprintf(cm, "big") + "data:\n  x: \"" + strings.Repeat("x", 2000) + "\"\n"},
			limits:  Limits{MaxFileBytes: 1024},
			wantErr: "larger than 1024 bytes",
			unsafe:  true,
		},
		{
			name:    "total over MaxTotalBytes",
			files:   map[string]string{"a.yaml": fmt.Sprintf(cm, "a"), "b.yaml": fmt.Sprintf(cm, "b")},
			limits:  Limits{MaxTotalBytes: 60},
			wantErr: "more than 60 bytes",
			unsafe:  true,
		},
		{
			name:    "more than MaxObjects",
			files:   map[string]string{"a.yaml": fmt.Sprintf(cm, "a") + "---\n" + fmt.Sprintf(cm, "b") + "---\n" + fmt.Sprintf(cm, "c")},
			limits:  Limits{MaxObjects: 2},
			wantErr: "a.yaml: more than 2 objects",
			unsafe:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			res, err := Plain(context.Background(), filepath.Join(root, tt.path), Options{Root: root, Limits: tt.limits})
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("want an error containing %q, got none", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if got := errors.Is(err, ErrUnsafe); got != tt.unsafe {
					t.Errorf("errors.Is(err, ErrUnsafe) = %v, want %v (%v)", got, tt.unsafe, err)
				}
				for _, secret := range []string{"hunter2", "c2VjcmV0", "root:"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error quotes file content %q: %v", secret, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range res.Objects {
				names = append(names, o.GetName())
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") {
				t.Errorf("objects %v, want %v", names, tt.want)
			}
			if strings.Join(res.Warnings, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(res.Warnings, "\n"), strings.Join(tt.warnings, "\n"))
			}
		})
	}
}

// billionLaughs is a YAML alias bomb: each level refers to the previous one
// nine times, so full expansion holds 9^9 (~387 million) strings.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n")
	b.WriteString("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for k := 0; k < 9; k++ {
			if k > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestPlainAliasBomb(t *testing.T) {
	root := writeTree(t, map[string]string{"bomb.yaml": billionLaughs()})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Plain(context.Background(), root, Options{})
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("an alias bomb rendered without error")
	}
	if !strings.Contains(err.Error(), "bomb.yaml") {
		t.Errorf("error does not name the file: %v", err)
	}
	const budget = 256 << 20
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > budget {
		t.Errorf("allocated %d MiB parsing an alias bomb, want under %d MiB", alloc>>20, budget>>20)
	}
}

func TestPlainCancelled(t *testing.T) {
	root := writeTree(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Plain(ctx, root, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
