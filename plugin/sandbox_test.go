package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderSandboxedEqualsInProcess(t *testing.T) {
	dir, err := filepath.Abs(shop)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"kustomize app with patches and images", []string{"render", "web"}},
		{"Helm app as JSON", []string{"render", "cache", "-o", "json", "-n", "demo"}},
		{"plain app", []string{"render", "config"}},
		{"every app", []string{"render", "."}},
		{"a path", []string{"render", "apps/web/overlays/staging"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, want, wantErr := run(t, dir, append(tc.args, "--sandbox=false")...)
			if code != 0 {
				t.Fatalf("in-process: exit %d, stderr: %s", code, wantErr)
			}
			code, got, gotErr := run(t, dir, tc.args...)
			if code != 0 {
				t.Fatalf("sandboxed: exit %d, stderr: %s", code, gotErr)
			}
			if got != want || gotErr != wantErr {
				t.Errorf("sandboxed output differs from the in-process one:\n--- sandboxed\n%s%s\n--- in-process\n%s%s", got, gotErr, want, wantErr)
			}
		})
	}
}

func TestRenderRefusesRootOrHomeWithoutRootFlag(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		dir       string
		args      []string
		refusedAt string // "" when the render must succeed
	}{
		{"a file in the home folder", home, []string{"render", "cm.yaml"}, home},
		{"the home folder", home, []string{"render", "."}, home},
		{"a file from /", "/", []string{"render", filepath.Join(home, "cm.yaml")}, "/"},
		{"the file system's root", "/", []string{"render", "/"}, "/"},
		{"the home folder with --root", home, []string{"render", "cm.yaml", "--root", home}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.dir, tc.args...)
			if tc.refusedAt == "" {
				if code != 0 || !strings.Contains(out, "name: a") {
					t.Errorf("exit %d, stdout %q, stderr %q; want the ConfigMap", code, out, errOut)
				}
				return
			}
			want := "refusing to render with " + tc.refusedAt + " as the folder reads are confined to"
			if code != ExitError || !strings.Contains(errOut, want) || !strings.Contains(errOut, "--root") {
				t.Errorf("exit %d, stderr %q; want a refusal naming %s and --root", code, errOut, tc.refusedAt)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}
