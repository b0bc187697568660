package render

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// kustCount is what building a kustomization costs, counted before the build
// with multiplicity: a base included by two overlays of one build is loaded,
// and its objects processed, twice.
type kustCount struct {
	loads   int64 // kustomizations loaded, this one and its bases
	objects int64 // objects this kustomization accumulates, its bases' included
	work    int64 // Σ over the loads of objects², krusty's cost
	// largestDoc is the largest resource document among them, in bytes,
	// and files the resource files (real paths): what a replacement could
	// copy from.
	largestDoc int64
	files      map[string]bool
	// fieldPaths counts the fields replacements of this kustomization
	// write (each target's fieldPaths).
	fieldPaths int64
}

// saturated is where counts stop growing, far above any limit, so a deep
// "diamond" cannot overflow them.
const saturated = math.MaxInt64 / 4

func satAdd(a, b int64) int64 { return min(a+b, saturated) }

// add counts a base (or component) of the kustomization.
func (k *kustCount) add(sub kustCount) {
	k.loads = satAdd(k.loads, sub.loads)
	k.objects = satAdd(k.objects, sub.objects)
	k.work = satAdd(k.work, sub.work)
	k.largestDoc = max(k.largestDoc, sub.largestDoc)
	for f := range sub.files {
		k.addFile(f)
	}
}

func (k *kustCount) addFile(real string) {
	if k.files == nil {
		k.files = map[string]bool{}
	}
	k.files[real] = true
}

// finish adds the kustomization's own load to its work once its objects are
// all counted.
func (k *kustCount) finish() {
	if k.objects > 1<<30 {
		k.work = saturated
		return
	}
	k.work = satAdd(k.work, k.objects*k.objects)
}

// checkKustomize refuses a build whose count is over the limits.
func (l Limits) checkKustomize(name string, c kustCount) error {
	if c.loads > int64(l.MaxKustomizations) {
		return fmt.Errorf("kustomize build of %s would load %s kustomizations (a base counts once for every kustomization that includes it), more than the %d allowed; a base included many times over, directly or through components, makes the build explode — include each base once, or raise the limit: %w",
			name, countString(c.loads), l.MaxKustomizations, ErrUnsafe)
	}
	if max := int64(l.MaxKustomizeObjects); c.work > max*max {
		return fmt.Errorf("kustomize build of %s would process about %s objects (counting a base's objects in every kustomization that includes it; kustomize's work grows with their square), more than the %d allowed; split the app into smaller kustomizations, or raise the limit: %w",
			name, countString(int64(math.Sqrt(float64(c.work)))), l.MaxKustomizeObjects, ErrUnsafe)
	}
	return nil
}

func countString(n int64) string {
	if n >= saturated {
		return "more than 10¹⁸"
	}
	return fmt.Sprint(n)
}

// countDocuments counts the objects a resource file holds, as an estimate
// that errs high: every document that is not blank, and for a List kind the
// lines that start an item. It also returns the size of the largest
// document.
func countDocuments(data []byte) (n, largest int64) {
	var items, size int64
	doc, list := false, false
	flush := func() {
		largest = max(largest, size)
		size = 0
		switch {
		case list && items > 0:
			n += items
		case doc:
			n++
		}
		doc, list, items = false, false, 0
	}
	for line := range bytes.Lines(data) {
		if bytes.HasPrefix(line, []byte("---")) {
			flush()
			continue
		}
		size += int64(len(line))
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		doc = true
		if k, ok := bytes.CutPrefix(line, []byte("kind:")); ok && bytes.HasSuffix(bytes.TrimSpace(k), []byte("List")) {
			list = true
		}
		if bytes.HasPrefix(line, []byte("- ")) || bytes.HasPrefix(line, []byte("  - ")) {
			items++
		}
	}
	flush()
	return n, largest
}

// countFieldPaths counts the target fields of replacements, given as
// decoded YAML (a kustomization's replacements, a replacements file, a
// ReplacementTransformer's configuration): every string listed under a
// "fieldPaths" key, at least one per replacement.
func countFieldPaths(v any) int64 {
	var n int64
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if list, ok := e.([]any); ok && strings.EqualFold(k, "fieldPaths") {
				n += int64(len(list))
				continue
			}
			n += countFieldPaths(e)
		}
	case []any:
		for _, e := range v {
			n += max(countFieldPaths(e), 1)
		}
	}
	return n
}

// checkReplacements refuses, before the build, replacements that could copy
// a large value into so many fields that the output would pass maxBytes
// (one 6 MB value into 400 objects). The cheap bound (the largest document
// times the fields written) is refined, only when it is over, by the
// largest scalar of the files the value could come from.
func (k *kustCount) checkReplacements(name string, maxBytes int64, read func(string) ([]byte, error)) error {
	if k.fieldPaths == 0 {
		return nil
	}
	targets := satMul(k.objects, k.fieldPaths)
	if satMul(k.largestDoc, targets) <= maxBytes {
		return nil
	}
	largest := int64(0)
	for f := range k.files {
		data, err := read(f)
		if err != nil {
			return err
		}
		largest = max(largest, largestScalar(data))
	}
	if satMul(largest, targets) > maxBytes {
		return fmt.Errorf("%s: replacements could copy a value of %d bytes into up to %d fields, more than the %d bytes one render may produce; copy smaller values or fewer, or raise the limit: %w", name, largest, targets, maxBytes, ErrUnsafe)
	}
	return nil
}

// largestScalar returns the size of the largest scalar in YAML data, or 0
// if it is not YAML (kustomize reports that itself).
func largestScalar(data []byte) int64 {
	var largest int64
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	for {
		var n yamlv3.Node
		if err := dec.Decode(&n); err != nil {
			return largest
		}
		stack := []*yamlv3.Node{&n}
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.Kind == yamlv3.ScalarNode {
				largest = max(largest, int64(len(top.Value)))
			}
			stack = append(stack, top.Content...)
		}
	}
}

// kustomizationSkip are the fields of a kustomization whose strings are
// data kustomize copies into objects, or that are checked on their own
// (plugin entries, Helm fields): noRemote does not look into them.
var kustomizationSkip = map[string]bool{
	"generators": true, "transformers": true, "validators": true, "patchesstrategicmerge": true,
	"helmcharts": true, "helmglobals": true, "helmchartinflationgenerator": true,
	"literals": true, "commonlabels": true, "commonannotations": true, "labels": true, "annotations": true,
	"images": true, "patch": true,
}

// pluginSkip are the fields of a builtin plugin configuration whose strings
// are data (values, labels, in-line patches), never a file or URL read.
var pluginSkip = map[string]bool{
	"literals": true, "labels": true, "annotations": true, "commonlabels": true, "commonannotations": true,
	"patch": true, "patches": true, "jsonop": true, "value": true, "imagetag": true, "images": true,
}

// noRemote refuses a string anywhere in v (a decoded kustomization or plugin
// configuration, at field) that kustomize or its getters could take for
// something to fetch, whatever the field: a pattern check on known path
// fields would miss the next one. Fields in skip (compared in lower case, as
// kustomize decodes them) hold data and are not looked into; strings of
// several lines are content, never a location.
func noRemote(where, field string, v any, skip map[string]bool) error {
	switch v := v.(type) {
	case string:
		if strings.Contains(v, "\n") {
			return nil
		}
		if why := fetchReason(v); why != "" {
			shown := redact(v)
			if len(shown) > 100 {
				shown = shown[:100] + "…"
			}
			return fmt.Errorf("%s: %s %q is %s, which kustomize may fetch during the build; renders fetch nothing, so %s: %w", where, fieldName(field), shown, why, vendorAdvice, ErrUnsafe)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if skip[strings.ToLower(k)] {
				continue
			}
			sub := k
			if field != "" {
				sub = field + "." + k
			}
			if err := noRemote(where, sub, v[k], skip); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := noRemote(where, fmt.Sprintf("%s[%d]", field, i), e, skip); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldName(field string) string {
	if field == "" {
		return "the document"
	}
	return field
}

var (
	// getterForced matches go-getter's forced protocols ("git::", "s3::").
	getterForced = regexp.MustCompile(`^[a-z][a-z0-9+.-]*::`)
	// scpLike matches "user@host:path", Git's scp-like syntax.
	scpLike = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9._-]*@[a-zA-Z0-9.-]+:`)
	// hostSubdir matches "host.tld/repo//subdir", the getter form of a
	// repository with a folder in it, which kustomize clones.
	hostSubdir = regexp.MustCompile(`^[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?/.*//`)
)

// fetchReason says why a string in any field would be something to fetch
// (a URL, a Git repository, a getter address), or "" if it would not. It is
// narrower than remoteReason, which also refuses anything URL-like in a path
// field, so that data such as an image "nginx:1.27" passes.
func fetchReason(s string) string {
	lower := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		return "a URL"
	case strings.HasPrefix(lower, "git::"):
		return "a Git repository"
	case strings.Contains(lower, "://"):
		return "a remote repository URL"
	case strings.HasPrefix(lower, "file:"):
		return "a file URL"
	case getterForced.MatchString(lower):
		return "a getter address"
	case scpLike.MatchString(lower):
		return "a Git repository (user@host)"
	case strings.HasPrefix(lower, "github.com/"), strings.HasPrefix(lower, "github.com:"):
		return "a GitHub repository"
	case strings.HasPrefix(lower, "gitlab.com/"), strings.HasPrefix(lower, "bitbucket.org/"):
		return "a hosted Git repository"
	case strings.Contains(lower, "?ref=") || strings.Contains(lower, "?version=") || strings.Contains(lower, "&ref=") || strings.Contains(lower, "?submodules="):
		return "a Git repository at a ref"
	case hostSubdir.MatchString(lower):
		return "a repository folder (host/repo//folder)"
	case strings.HasPrefix(lower, "//"):
		return "a network path"
	}
	return ""
}
