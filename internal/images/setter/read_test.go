package setter_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
)

func TestRead(t *testing.T) {
	files := map[string][]byte{
		"apps/web/deploy.yaml": []byte("spec:\n  containers:\n    - image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\n" +
			"---\nimage: \"ghcr.io/acme/api:1.10@" + digestAPI + "\" # {\"$imagepolicy\": \"api\"}\n"),
		"apps/web/values.yaml": []byte("image:\n  repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"web:name\"}\n  tag: '6.6.0' # {\"$imagepolicy\": \"web:tag\"}\n" +
			"  digest: " + digestWorker + " # {\"$imagepolicy\": \"worker:digest\"}\n"),
		"apps/web/notes.txt":    []byte(`image: x:1 # {"$imagepolicy": "web"}`),
		"apps/web/comment.yaml": []byte("# image: ghcr.io/x:0.1 # {\"$imagepolicy\": \"web\"}\nkind: ConfigMap\n"),
	}
	got, err := setter.Read(files, setter.Options{Policies: []string{"web", "api", "worker", "unused"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*setter.Current{
		"web": {Tags: []string{"6.7.0", "6.6.0"}, Values: []setter.Value{
			{File: "apps/web/deploy.yaml", Line: 3, Policy: "web", Value: "ghcr.io/stefanprodan/podinfo:6.7.0"},
			{File: "apps/web/values.yaml", Line: 2, Policy: "web", Field: "name", Value: "ghcr.io/stefanprodan/podinfo"},
			{File: "apps/web/values.yaml", Line: 3, Policy: "web", Field: "tag", Value: "6.6.0"},
		}},
		"api": {Tags: []string{"1.10"}, Digests: []string{digestAPI}, Values: []setter.Value{
			{File: "apps/web/deploy.yaml", Line: 5, Policy: "api", Value: "ghcr.io/acme/api:1.10@" + digestAPI},
		}},
		"worker": {Digests: []string{digestWorker}, Values: []setter.Value{
			{File: "apps/web/values.yaml", Line: 4, Policy: "worker", Field: "digest", Value: digestWorker},
		}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Read (-want +got):\n%s", d)
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		opts  setter.Options
		want  []string
	}{
		{"undeclared policy", map[string]string{"a.yaml": "image: x:1 # {\"$imagepolicy\": \"nope\"}\n"},
			setter.Options{Policies: []string{"web"}}, []string{`a.yaml:1: marker names image policy "nope"`}},
		{"any policy when none are declared", map[string]string{"a.yaml": "image: x:1 # {\"$imagepolicy\": \"nope\"}\n", "b.yaml": "a: [ # {\"$imagepolicy\": \"web\"}\n"},
			setter.Options{}, []string{"b.yaml:", "not valid YAML"}},
		{"too large", map[string]string{"a.yaml": "image: x:1 # {\"$imagepolicy\": \"web\"}\n" + strings.Repeat("#\n", 100)},
			setter.Options{MaxFileSize: 64}, []string{"a.yaml: ", "more than the 64"}},
		{"block scalar", map[string]string{"a.yaml": "image: | # {\"$imagepolicy\": \"web\"}\n  x:1\n"},
			setter.Options{}, []string{"a.yaml:1: image policy marker after a block scalar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range tc.files {
				files[k] = []byte(v)
			}
			_, err := setter.Read(files, tc.opts)
			if err == nil {
				t.Fatal("Read = nil error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Read error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct{ ref, image, tag, digest string }{
		{"ghcr.io/org/app:1.2", "ghcr.io/org/app", "1.2", ""},
		{"ghcr.io/org/app:1.2@sha256:ab", "ghcr.io/org/app", "1.2", "sha256:ab"},
		{"ghcr.io/org/app@sha256:ab", "ghcr.io/org/app", "", "sha256:ab"},
		{"localhost:5000/app", "localhost:5000/app", "", ""},
		{"localhost:5000/app:v1", "localhost:5000/app", "v1", ""},
		{"nginx", "nginx", "", ""},
	} {
		image, tag, digest := setter.SplitRef(tc.ref)
		if image != tc.image || tag != tc.tag || digest != tc.digest {
			t.Errorf("SplitRef(%q) = %q, %q, %q; want %q, %q, %q", tc.ref, image, tag, digest, tc.image, tc.tag, tc.digest)
		}
	}
}
