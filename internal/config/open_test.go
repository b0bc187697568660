//go:build unix

package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// canary stands for a secret in a file a pull request links to.
const canary = "c4n4ry-s3cret-value"

// secretFile writes a YAML file full of canaries outside the repository,
// shaped like a kubeconfig so that a parser finds fields to complain about.
func secretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	content := "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user: {token: " + canary + "}\nprune: " + canary + "\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadWithin runs load and fails the test if it has not returned within
// 20 s, so a FIFO regression fails instead of hanging the suite.
func loadWithin(t *testing.T, load func() (*Repository, error)) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := load()
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatal("still reading after 20 s; want a refusal")
		return nil
	}
}

// TestLoadHostileFiles: a repository file that is a symlink out of its
// folder, a FIFO or a folder is refused, with Load (Find's result) and
// LoadFile (a checkout) alike, and no value of the file read reaches the
// error.
func TestLoadHostileFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, repo string)
		file  string // passed to LoadFile; Load gets it joined to the repository
		want  string
		// fileOnly is set where Load, given a path in the linked folder
		// by the caller, reads it as the caller asked.
		fileOnly bool
	}{
		{
			name: "symlink to a file outside",
			setup: func(t *testing.T, repo string) {
				symlinkTo(t, secretFile(t), filepath.Join(repo, FileName))
			},
			file: FileName,
			want: "leads out of",
		},
		{
			name: "symlinked folder",
			setup: func(t *testing.T, repo string) {
				dir := filepath.Dir(secretFile(t))
				if err := os.Rename(filepath.Join(dir, "config"), filepath.Join(dir, FileName)); err != nil {
					t.Fatal(err)
				}
				symlinkTo(t, dir, filepath.Join(repo, "conf"))
			},
			file:     "conf/" + FileName,
			want:     "leads out of",
			fileOnly: true,
		},
		{
			name: "FIFO",
			setup: func(t *testing.T, repo string) {
				if err := syscall.Mkfifo(filepath.Join(repo, FileName), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			file: FileName,
			want: "named pipe",
		},
		{
			name:  "folder",
			setup: func(t *testing.T, repo string) { mkdirAll(t, filepath.Join(repo, FileName)) },
			file:  FileName,
			want:  "not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			tt.setup(t, repo)
			loaders := map[string]func() (*Repository, error){
				"Load":     func() (*Repository, error) { return Load(filepath.Join(repo, tt.file)) },
				"LoadFile": func() (*Repository, error) { return LoadFile(repo, tt.file) },
			}
			if tt.fileOnly {
				delete(loaders, "Load")
			}
			for name, load := range loaders {
				err := loadWithin(t, load)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: err = %v, want one containing %q", name, err, tt.want)
				}
				if err != nil && strings.Contains(err.Error(), canary) {
					t.Errorf("%s: the error quotes the linked file: %v", name, err)
				}
			}
		})
	}
}

// TestLoadFileConfined: LoadFile takes a path inside the checkout only, and
// follows a link that stays in the repository file's folder.
func TestLoadFileConfined(t *testing.T) {
	repo := t.TempDir()
	content := "apiVersion: " + APIVersion + "\nkind: " + Kind + "\n"
	if err := os.WriteFile(filepath.Join(repo, "real.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	symlinkTo(t, "real.yaml", filepath.Join(repo, FileName))
	if r, err := LoadFile(repo, FileName); err != nil || r.File != filepath.Join(repo, FileName) {
		t.Errorf("link inside the folder: %v, %v; want it loaded", r, err)
	}
	for _, name := range []string{"../" + FileName, "/etc/" + FileName, "a/../../" + FileName} {
		if _, err := LoadFile(repo, name); err == nil || !strings.Contains(err.Error(), "inside the repository") {
			t.Errorf("LoadFile(%q): err = %v, want a refusal", name, err)
		}
	}
}

// TestErrorsQuoteNoValues: an in-tree file that is not a valid repository
// file is reported by line and field; its values are never quoted.
func TestErrorsQuoteNoValues(t *testing.T) {
	for _, content := range []string{
		"apiVersion: " + APIVersion + "\nkind: " + Kind + "\napps:\n- name: web\n  path: x\n  prune: " + canary + "\n",
		"apiVersion: " + APIVersion + "\nkind: " + Kind + "\napps: " + canary + "\n",
		"apiVersion: " + APIVersion + "\nkind: " + Kind + "\napps:\n- name: [" + canary + "\n",
		"apiVersion: " + APIVersion + "\nkind: " + Kind + "\n" + strings.Repeat("x", maxKeyShown) + canary + ": 1\n",
	} {
		_, err := Load(writeRepo(t, content))
		if err == nil {
			t.Fatalf("%q: want an error", content)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("the error quotes a value: %v", err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Line == 0 {
			t.Errorf("error %v has no line", err)
		}
	}
}

func symlinkTo(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
