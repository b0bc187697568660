package gittest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoCommitTagBranch(t *testing.T) {
	r := NewRepo(t, map[string]string{"a.yaml": "a: 1\n", "dir/b.yaml": "b: 1\n"})
	first := r.Head(t)
	r.Tag(t, "v1")
	r.Branch(t, "release")
	second := r.Commit(t, map[string]string{"a.yaml": "a: 2\n", "dir/b.yaml": ""}, "change a, delete b")
	if first == second || len(second) != 40 {
		t.Fatalf("commit SHAs: first %s, second %s", first, second)
	}
	if got := r.Head(t); got != second {
		t.Errorf("Head = %s, want %s", got, second)
	}
	if got := r.run(t, "rev-parse", "v1^{commit}"); got != first {
		t.Errorf("tag v1 at %s, want %s", got, first)
	}
	if got := r.run(t, "cat-file", "-t", "v1"); got != "tag" {
		t.Errorf("tag v1 is a %s object, want an annotated tag", got)
	}
	if got := r.run(t, "rev-parse", "release"); got != first {
		t.Errorf("branch release at %s, want %s", got, first)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "dir", "b.yaml")); !os.IsNotExist(err) {
		t.Errorf("dir/b.yaml still exists: %v", err)
	}
	if got := r.run(t, "ls-tree", "-r", "--name-only", "HEAD"); got != "a.yaml" {
		t.Errorf("HEAD tree = %q, want only a.yaml", got)
	}
}

func TestRepoIsDeterministic(t *testing.T) {
	build := func() string {
		r := NewRepo(t, map[string]string{"a": "1"})
		r.Tag(t, "v1")
		return r.Commit(t, map[string]string{"b": "2"}, "second") + " " + r.run(t, "rev-parse", "v1")
	}
	if a, b := build(), build(); a != b {
		t.Errorf("same steps gave different objects: %s vs %s", a, b)
	}
}

func TestResolve(t *testing.T) {
	r := NewRepo(t, map[string]string{"a": "1"})
	first := r.Head(t)
	r.Tag(t, "v1")
	r.Branch(t, "feature/x")
	second := r.Commit(t, map[string]string{"a": "2"}, "second")
	for _, tc := range []struct {
		ref    string
		want   string
		wantOK bool
	}{
		{"main", second, true},
		{"feature/x", first, true},
		{"refs/heads/feature/x", first, true},
		{"v1", first, true}, // an annotated tag peels to its commit
		{first, first, true},
		{"missing", "", false},
		{"HEAD^{tree}", "", false}, // not a commit
		{"", "", false},
		{"--all", "", false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			// From another goroutine, as a fake's handler calls it.
			type result struct {
				sha string
				ok  bool
			}
			done := make(chan result)
			go func() {
				sha, ok := r.Resolve(t, tc.ref)
				done <- result{sha, ok}
			}()
			got := <-done
			if got.sha != tc.want || got.ok != tc.wantOK {
				t.Errorf("Resolve(%q) = %q, %v; want %q, %v", tc.ref, got.sha, got.ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestServeClone(t *testing.T) {
	r := NewRepo(t, map[string]string{"app.yaml": "kind: ConfigMap\n"})
	s := Serve(t, map[string]*Repo{"org/app": r})

	dst := filepath.Join(t.TempDir(), "clone")
	runGit(t, t.TempDir(), nil, "clone", "-q", "--", s.URL("org/app"), dst)
	got, err := os.ReadFile(filepath.Join(dst, "app.yaml"))
	if err != nil || string(got) != "kind: ConfigMap\n" {
		t.Fatalf("cloned app.yaml = %q, %v", got, err)
	}
	if s.Requests() == 0 {
		t.Error("Requests() = 0 after a clone")
	}

	// Later commits are served, and any commit can be fetched by SHA.
	old := r.Head(t)
	r.Commit(t, map[string]string{"app.yaml": "kind: Secret\n"}, "second")
	fresh := filepath.Join(t.TempDir(), "fresh")
	runGit(t, t.TempDir(), nil, "init", "-q", fresh)
	runGit(t, fresh, nil, "fetch", "-q", "--depth=1", "--", s.URL("org/app"), old)
	if got := runGit(t, fresh, nil, "rev-parse", "FETCH_HEAD"); got != old {
		t.Errorf("fetched %s, want %s", got, old)
	}
}

func TestServeBasicAuth(t *testing.T) {
	r := NewRepo(t, map[string]string{"a": "1"})
	s := Serve(t, map[string]*Repo{"app": r}, WithBasicAuth("bot", "s3cret"))

	get := func(user, pass string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL("app")+"/info/refs?service=git-upload-pack", nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("", ""); got != http.StatusUnauthorized {
		t.Errorf("no credentials: status %d, want 401", got)
	}
	if got := get("bot", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", got)
	}
	if got := get("bot", "s3cret"); got != http.StatusOK {
		t.Errorf("right credentials: status %d, want 200", got)
	}
	if got := s.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}

	// The git client without credentials fails instead of prompting.
	cmd := exec.CommandContext(t.Context(), "git", "ls-remote", "--", s.URL("app"))
	cmd.Env = isolatedEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "terminal prompts disabled") {
		t.Errorf("ls-remote without credentials: err %v, output %s", err, out)
	}
}
