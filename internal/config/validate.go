package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	releaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hexSHA      = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
	scpLike     = regexp.MustCompile(`^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^\s]+$`)
	allowEntry  = regexp.MustCompile(`^(?:(?:https?|ssh)://(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+(?::[0-9]+)?(?:/\S*)?|[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:\S*)$`)
	// Image references, after the distribution reference grammar.
	imageName   = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	imageTag    = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	imageDigest = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$`)
	// A Go regexp.Expand reference: $name, ${name} (and $$, a literal $).
	expandRef = regexp.MustCompile(`\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))`)
)

// Validate reports every problem in the repository, joined with errors.Join.
// Each is an *Error naming the file, line and field and saying what to do.
// Validate reads no files: whether paths exist is the renderer's business.
func (r *Repository) Validate() error {
	v := &validator{r: r, p: problems{file: r.displayName(), lines: r.lines}}
	v.header()
	v.apps()
	v.imagePolicies()
	v.approvals()
	v.notifications()
	v.sources()
	return v.p.err()
}

func (r *Repository) displayName() string {
	switch {
	case r.name != "":
		return r.name
	case r.File != "":
		return r.File
	}
	return FileName
}

type validator struct {
	r *Repository
	p problems
}

func (v *validator) header() {
	switch v.r.APIVersion {
	case APIVersion:
	case "":
		v.p.add("apiVersion", "missing; add apiVersion: %s", APIVersion)
	default:
		v.p.add("apiVersion", "is %q, expected %q; this version of kubectl-gitops reads %s", v.r.APIVersion, APIVersion, APIVersion)
	}
	switch v.r.Kind {
	case Kind:
	case "":
		v.p.add("kind", "missing; add kind: %s", Kind)
	default:
		v.p.add("kind", "is %q, expected %q", v.r.Kind, Kind)
	}
}

// name checks a name that other fields refer to.
func (v *validator) name(field, kind, name string, seen map[string]string) {
	switch {
	case name == "":
		v.p.add(field, "%s name is missing; add name: with a lowercase name such as podinfo", kind)
		return
	case len(name) > 63 || !dnsLabel.MatchString(name):
		v.p.add(field, "%s name %q is not a DNS label; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", kind, name)
	}
	if prev, ok := seen[name]; ok {
		v.p.add(field, "%s name %q is already used by %s (line %d); names must be unique", kind, name, prev, lineOf(v.p.lines, prev))
		return
	}
	seen[name] = parentField(field)
}

// syncMode checks a sync field.
func (v *validator) syncMode(f string, m SyncMode) {
	switch m {
	case "", SyncOnMerge, SyncManual:
	default:
		v.p.add(f, "is %q; use onMerge (the bot applies approved merges) or manual (only on /gitops sync)", m)
	}
}

func (v *validator) apps() {
	v.syncMode("sync", v.r.Sync)
	seen := map[string]string{}
	for i := range v.r.Apps {
		v.name(fmt.Sprintf("apps[%d].name", i), "app", v.r.Apps[i].Name, seen)
	}
	approvals := map[string]bool{}
	for _, a := range v.r.Approvals {
		approvals[a.Name] = true
	}
	for i := range v.r.Apps {
		v.app(fmt.Sprintf("apps[%d]", i), &v.r.Apps[i], seen, approvals)
	}
	v.cycles()
}

func (v *validator) app(f string, a *App, apps map[string]string, approvals map[string]bool) {
	if a.Source != nil {
		v.source(f+".source", a.Source)
	}
	switch {
	case a.Path != "":
		v.path(f+".path", a.Path, "", "the repository")
	case a.Source == nil && (a.Helm == nil || !a.Helm.Remote()):
		v.p.add(f+".path", "missing; set path to the app's folder in this repository (relative to %s), or set source or a remote helm chart", FileName)
	}
	if a.Namespace != "" && (len(a.Namespace) > 63 || !dnsLabel.MatchString(a.Namespace)) {
		v.p.add(f+".namespace", "%q is not a valid namespace; use at most 63 lowercase letters, digits and '-'", a.Namespace)
	}
	for j, p := range a.Patches {
		v.patch(fmt.Sprintf("%s.patches[%d]", f, j), p)
	}
	for j, img := range a.Images {
		v.imageOverride(fmt.Sprintf("%s.images[%d]", f, j), img)
	}
	if a.Helm != nil {
		// A chart folder and values files are paths from the root of the
		// repository (or of the source), like every path of this file.
		v.helm(f+".helm", a.Helm, "", a.Source != nil)
	}
	deps := map[string]bool{}
	for j, d := range a.DependsOn {
		df := fmt.Sprintf("%s.dependsOn[%d]", f, j)
		_, ok := apps[d]
		switch {
		case d == a.Name && d != "":
			v.p.add(df, "app %q depends on itself; remove it from dependsOn", d)
		case !ok:
			v.p.add(df, "app %q is not defined%s; name an app from apps", d, didYouMean(d, keys(apps)))
		case deps[d]:
			v.p.add(df, "app %q is listed twice; remove one", d)
		}
		deps[d] = true
	}
	if a.Wait != nil && a.Wait.Timeout.Duration < 0 {
		v.p.add(f+".wait.timeout", "is negative; use a positive duration such as 5m")
	}
	v.syncMode(f+".sync", a.Sync)
	if a.Approval != "" && !approvals[a.Approval] {
		names := make([]string, 0, len(v.r.Approvals))
		for _, p := range v.r.Approvals {
			names = append(names, p.Name)
		}
		v.p.add(f+".approval", "approval policy %q is not defined%s; add it under approvals or fix the name", a.Approval, didYouMean(a.Approval, names))
	}
}

// path checks a slash-separated path relative to base inside root.
func (v *validator) path(field, p, base, root string) {
	switch {
	case p == "":
		v.p.add(field, "is empty; name a folder relative to %s", root)
	case strings.Contains(p, `\`):
		v.p.add(field, "%q contains '\\'; separate folders with '/'", p)
	case path.IsAbs(p) || (len(p) > 1 && p[1] == ':'):
		v.p.add(field, "%q is absolute; write it relative to %s", p, root)
	default:
		clean := path.Clean(p)
		if j := path.Join(base, clean); j == ".." || strings.HasPrefix(j, "../") {
			v.p.add(field, "%q leaves %s; paths must stay inside it", p, root)
		} else if p != clean && p != "./"+clean && p != clean+"/" && p != "./"+clean+"/" {
			v.p.add(field, "%q is not clean; write %q", p, clean)
		}
	}
}

func (v *validator) source(f string, s *GitSource) {
	if msg := gitURLProblem(s.Git); msg != "" {
		v.p.add(f+".git", "%s", msg)
	} else if !v.r.Sources.Allows(s.Git) {
		v.p.add(f+".git", "is not allowed by sources.allow; add its prefix there or use an allowed source")
	}
	if msg := gitRefProblem(s.Ref); msg != "" {
		v.p.add(f+".ref", "%s", msg)
	}
	if s.Path != "" {
		v.path(f+".path", s.Path, "", "the source")
	}
}

// gitURLProblem explains what is wrong with a Git URL, without quoting it:
// it may carry credentials.
func gitURLProblem(s string) string {
	const want = "use https://host/path, http://host/path, ssh://host/path or git@host:path"
	switch {
	case s == "":
		return "missing; " + want
	case strings.HasPrefix(s, "-"):
		return "starts with '-'; " + want
	case strings.ContainsFunc(s, unicode.IsSpace):
		return "contains spaces; " + want
	case scpLike.MatchString(s) && !strings.Contains(s, "://"):
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "is not a URL; " + want
	}
	switch u.Scheme {
	case "https", "http", "ssh":
	case "":
		return "has no scheme; " + want
	default:
		return fmt.Sprintf("uses %s://, which is not allowed; %s", u.Scheme, want)
	}
	if u.Host == "" {
		return "has no host; " + want
	}
	if _, hasPassword := u.User.Password(); hasPassword || (u.User != nil && u.Scheme != "ssh") {
		return "contains credentials; remove them from the URL and give the engine credentials for the host instead"
	}
	if strings.Trim(u.Path, "/") == "" {
		return "has no repository path; " + want
	}
	return ""
}

func gitRefProblem(ref string) string {
	const want = "use a tag, a branch or a full commit SHA"
	if ref == "" {
		return "missing; " + want + " (pin a tag or SHA for reproducible renders)"
	}
	if hexSHA.MatchString(ref) {
		return ""
	}
	bad := strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, ".") ||
		strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "@{") || strings.Contains(ref, "/.") || ref == "@" ||
		strings.ContainsFunc(ref, func(r rune) bool {
			return r < 0x20 || r == 0x7f || unicode.IsSpace(r) || strings.ContainsRune(`~^:?*[\`, r)
		})
	if bad {
		return fmt.Sprintf("%q is not a valid Git ref; %s", ref, want)
	}
	return ""
}

func (v *validator) patch(f string, p Patch) {
	pf := f + ".patch"
	if strings.TrimSpace(p.Patch) == "" {
		v.p.add(pf, "is empty; write a strategic-merge patch (a partial object) or a JSON6902 patch (a list of operations)")
		return
	}
	dec := yaml.NewDecoder(strings.NewReader(p.Patch))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		v.p.add(pf, "does not parse as YAML: %s", trimYAMLPrefix(err.Error()))
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		v.p.add(pf, "holds more than one YAML document; give each its own entry under patches")
		return
	}
	root := deref(doc.Content[0])
	switch root.Kind {
	case yaml.SequenceNode:
		if p.Target == nil {
			v.p.add(pf, "is a JSON6902 patch, which needs a target; add target: {kind: ..., name: ...}")
		}
		for k, op := range root.Content {
			v.jsonOp(pf, k, deref(op))
		}
	case yaml.MappingNode:
		if p.Target != nil {
			return
		}
		if s := scalarAt(root, "kind"); s == "" {
			v.p.add(pf, "is a strategic-merge patch without a target, so it needs kind and metadata.name to say which object it patches; add them or add a target")
		} else if meta := mapAt(root, "metadata"); meta == nil || scalarAt(meta, "name") == "" {
			v.p.add(pf, "is a strategic-merge patch without a target, so it needs metadata.name to say which %s it patches; add it or add a target", s)
		}
	default:
		v.p.add(pf, "is a %s; write a strategic-merge patch (a partial object) or a JSON6902 patch (a list of operations)", kindName(root))
	}
}

func (v *validator) jsonOp(pf string, k int, op *yaml.Node) {
	where := fmt.Sprintf("operation %d (patch line %d)", k+1, op.Line)
	if op.Kind != yaml.MappingNode {
		v.p.add(pf, "%s: is a %s; each JSON6902 operation is a mapping with op and path", where, kindName(op))
		return
	}
	name := scalarAt(op, "op")
	switch name {
	case "add", "remove", "replace", "move", "copy", "test":
	case "":
		v.p.add(pf, "%s: has no op; use add, remove, replace, move, copy or test", where)
		return
	default:
		v.p.add(pf, "%s: has op %q; use add, remove, replace, move, copy or test", where, name)
		return
	}
	if p, ok := pointerAt(op, "path"); !ok {
		v.p.add(pf, "%s: has no path; add a JSON pointer such as /spec/replicas", where)
	} else if p != "" && !strings.HasPrefix(p, "/") {
		v.p.add(pf, "%s: has path %q, which is not a JSON pointer; start it with '/'", where, p)
	}
	switch name {
	case "move", "copy":
		if p, ok := pointerAt(op, "from"); !ok || (p != "" && !strings.HasPrefix(p, "/")) {
			v.p.add(pf, "%s: %s needs from, a JSON pointer such as /spec/template", where, name)
		}
	case "add", "replace", "test":
		if nodeAt(op, "value") == nil {
			v.p.add(pf, "%s: %s needs a value", where, name)
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeAt(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

func scalarAt(m *yaml.Node, key string) string {
	if n := nodeAt(m, key); n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
		return n.Value
	}
	return ""
}

func pointerAt(m *yaml.Node, key string) (string, bool) {
	n := nodeAt(m, key)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", false
	}
	return n.Value, true
}

func mapAt(m *yaml.Node, key string) *yaml.Node {
	if n := nodeAt(m, key); n != nil && n.Kind == yaml.MappingNode {
		return n
	}
	return nil
}

func (v *validator) imageOverride(f string, img Image) {
	switch {
	case img.Name == "":
		v.p.add(f+".name", "missing; name the image as written in the manifests, such as ghcr.io/stefanprodan/podinfo")
	case !imageName.MatchString(img.Name):
		v.p.add(f+".name", "%q is not an image name; write it without tag or digest, in lowercase, such as ghcr.io/org/app", img.Name)
	}
	if img.NewName == "" && img.NewTag == "" && img.Digest == "" {
		v.p.add(f, "changes nothing; set newName, newTag or digest")
	}
	if img.NewName != "" && !imageName.MatchString(img.NewName) {
		v.p.add(f+".newName", "%q is not an image name; write it without tag or digest, in lowercase", img.NewName)
	}
	if img.NewTag != "" && !imageTag.MatchString(img.NewTag) {
		v.p.add(f+".newTag", "%q is not a valid tag; use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')", img.NewTag)
	}
	if img.Digest != "" && !imageDigest.MatchString(img.Digest) {
		v.p.add(f+".digest", "%q is not a digest; write it as sha256:<64 hex digits>", img.Digest)
	}
}

func (v *validator) helm(f string, h *Helm, base string, fromSource bool) {
	root := "the repository"
	if fromSource {
		root = "the source"
	}
	switch {
	case h.Chart == "":
		v.p.add(f+".chart", "missing; name a chart folder, a chart in repo, or an oci:// reference")
	case strings.HasPrefix(h.Chart, "oci://"):
		if h.Repo != "" {
			v.p.add(f+".repo", "is set with an oci:// chart; remove repo, the chart reference already names the registry")
		}
		if u, err := url.Parse(h.Chart); err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			v.p.add(f+".chart", "%q is not an OCI chart reference; write oci://registry/path/chart", h.Chart)
		}
	case h.Repo != "":
		if u, err := url.Parse(h.Repo); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.p.add(f+".repo", "is not a chart repository URL; use https://host/path (for OCI registries, set chart: oci://... instead)")
		} else if u.User != nil {
			v.p.add(f+".repo", "contains credentials; remove them from the URL")
		}
		if strings.Contains(h.Chart, "/") {
			v.p.add(f+".chart", "%q has a '/'; with repo, chart is the chart's name in that repository, such as podinfo", h.Chart)
		}
	default:
		v.path(f+".chart", h.Chart, base, root)
	}
	if h.Version != "" {
		if _, err := semver.NewConstraint(h.Version); err != nil {
			v.p.add(f+".version", "%q is not a version or semver range: %v; use a version such as 6.7.1 or a range such as 6.7.x", h.Version, err)
		}
	}
	if h.ReleaseName != "" && (len(h.ReleaseName) > 53 || !releaseName.MatchString(h.ReleaseName)) {
		v.p.add(f+".releaseName", "%q is not a valid release name; use at most 53 lowercase letters, digits, '-' and '.'", h.ReleaseName)
	}
	for i, vf := range h.ValuesFiles {
		v.path(fmt.Sprintf("%s.valuesFiles[%d]", f, i), vf, base, root)
	}
}

// cycles reports each dependency cycle once, with its path, at the
// dependsOn entry that closes it.
func (v *validator) cycles() {
	apps := v.r.Apps
	index := make(map[string]int, len(apps))
	for i, a := range apps {
		if _, dup := index[a.Name]; !dup {
			index[a.Name] = i
		}
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make([]int, len(apps))
	var stack []int
	reported := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		state[i] = active
		stack = append(stack, i)
		for j, dep := range apps[i].DependsOn {
			k, ok := index[dep]
			if !ok || k == i {
				continue
			}
			switch state[k] {
			case unvisited:
				visit(k)
			case active:
				cycle := stack[slices.Index(stack, k):]
				key := cycleKey(cycle)
				if reported[key] {
					continue
				}
				reported[key] = true
				names := make([]string, 0, len(cycle)+1)
				for _, c := range cycle {
					names = append(names, apps[c].Name)
				}
				names = append(names, apps[k].Name)
				v.p.add(fmt.Sprintf("apps[%d].dependsOn[%d]", i, j), "dependency cycle %s; remove one of these dependsOn entries", strings.Join(names, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range apps {
		if state[i] == unvisited {
			visit(i)
		}
	}
}

func cycleKey(cycle []int) string {
	s := slices.Clone(cycle)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (v *validator) imagePolicies() {
	seen := map[string]string{}
	for i := range v.r.Images {
		f := fmt.Sprintf("images[%d]", i)
		p := &v.r.Images[i]
		v.name(f+".name", "image policy", p.Name, seen)
		switch {
		case p.Image == "":
			v.p.add(f+".image", "missing; name the image repository to scan, such as ghcr.io/stefanprodan/podinfo")
		case !imageName.MatchString(p.Image):
			v.p.add(f+".image", "%q is not an image repository; write it without tag or digest, in lowercase, such as ghcr.io/org/app", p.Image)
		}
		v.tagPolicy(f+".policy", p.Policy)
		if p.FilterTags != nil {
			v.filterTags(f+".filterTags", p.FilterTags)
		}
		for j, e := range p.Exclude {
			if _, err := regexp.Compile(e); err != nil {
				v.p.add(fmt.Sprintf("%s.exclude[%d]", f, j), "%q is not a regular expression: %v", e, err)
			}
		}
		if pr := p.PullRequest; pr != nil {
			for _, t := range []struct{ field, text string }{{"branch", pr.Branch}, {"title", pr.Title}, {"body", pr.Body}, {"commitMessage", pr.CommitMessage}} {
				if _, err := RenderImageTemplate(t.text, sampleImageUpdate, false); err != nil {
					v.p.add(f+".pullRequest."+t.field, "is not a valid template: %v; use {{.Name}}, {{.Image}}, {{.OldTag}}, {{.NewTag}} and {{range .Updates}}…{{end}} (.Policy, .Image, .OldTag, .NewTag, .Digest, .Source, .Revision)", err)
				}
			}
		}
		if p.Interval.Duration < 0 {
			v.p.add(f+".interval", "is negative; use a positive duration such as 5m")
		}
		switch p.Digest {
		case "", DigestNone, DigestPin:
		default:
			v.p.add(f+".digest", "is %q%s; use pin (write image:tag@sha256:…, keeping the tag for readers) or none (write image:tag)",
				p.Digest, didYouMean(string(p.Digest), []string{string(DigestPin), string(DigestNone)}))
		}
		if p.MinimumAge.Duration < 0 {
			v.p.add(f+".minimumAge", "is negative; use a positive duration such as 24h")
		}
	}
	v.imageGroups()
}

// imageGroups checks the groups of image policies. A group's pull request
// has the branch template of its policies rendered with the group's name,
// so they must agree on it, and it must not collide with the branch of a
// policy outside the group.
func (v *validator) imageGroups() {
	first := map[string]int{} // group → index of its first policy
	for i := range v.r.Images {
		p := &v.r.Images[i]
		if p.Group == "" {
			continue
		}
		f := fmt.Sprintf("images[%d]", i)
		if len(p.Group) > 63 || !dnsLabel.MatchString(p.Group) {
			v.p.add(f+".group", "%q is not a DNS label; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", p.Group)
			continue
		}
		j, seen := first[p.Group]
		if !seen {
			first[p.Group] = i
			continue
		}
		if b, want := branchTemplate(p), branchTemplate(&v.r.Images[j]); b != want {
			v.p.add(f+".pullRequest.branch", "is %q, but images[%d] (line %d) in group %q has %q; the policies of a group share one pull request, so give them the same branch or leave it unset",
				b, j, lineOf(v.p.lines, fmt.Sprintf("images[%d]", j)), p.Group, want)
		}
	}
	for i := range v.r.Images {
		p := &v.r.Images[i]
		if p.Group != "" {
			continue
		}
		j, ok := first[p.Name]
		if !ok || branchTemplate(p) != branchTemplate(&v.r.Images[j]) {
			continue
		}
		v.p.add(fmt.Sprintf("images[%d].group", j), "group %q has the name of images[%d] (line %d), which is not in the group, so both pull requests would use one branch; rename the group or the policy",
			p.Name, i, lineOf(v.p.lines, fmt.Sprintf("images[%d]", i)))
	}
}

// branchTemplate is a policy's pull request branch template, defaulted.
func branchTemplate(p *ImagePolicy) string {
	if p.PullRequest == nil || p.PullRequest.Branch == "" {
		return DefaultPullRequestBranch
	}
	return p.PullRequest.Branch
}

func (v *validator) tagPolicy(f string, p TagPolicy) {
	n := 0
	for _, set := range []bool{p.Semver != nil, p.Alphabetical != nil, p.Numerical != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.p.add(f, "sets %d of semver, alphabetical and numerical; set exactly one, such as policy: {semver: {range: \">=1.0.0\"}}", n)
	}
	if s := p.Semver; s != nil {
		if s.Range == "" {
			v.p.add(f+".semver.range", "missing; set a semver range such as \">=1.0.0\" or \"~6.7\"")
		} else if _, err := semver.NewConstraint(s.Range); err != nil {
			v.p.add(f+".semver.range", "%q is not a semver range: %v; use a range such as \">=1.0.0 <2.0.0\"", s.Range, err)
		}
	}
	for _, o := range []struct {
		field string
		p     *OrderPolicy
	}{{"alphabetical", p.Alphabetical}, {"numerical", p.Numerical}} {
		if o.p != nil && o.p.Order != "" && o.p.Order != OrderAsc && o.p.Order != OrderDesc {
			v.p.add(f+"."+o.field+".order", "is %q; use asc or desc", o.p.Order)
		}
	}
}

func (v *validator) filterTags(f string, ft *FilterTags) {
	if ft.Pattern == "" {
		v.p.add(f+".pattern", "missing; set a regular expression that tags must match")
		return
	}
	re, err := regexp.Compile(ft.Pattern)
	if err != nil {
		v.p.add(f+".pattern", "%q is not a regular expression: %v", ft.Pattern, err)
		return
	}
	if ft.Extract == "" {
		return
	}
	refs := expandRef.FindAllStringSubmatch(ft.Extract, -1)
	named := slices.DeleteFunc(slices.Clone(re.SubexpNames()), func(s string) bool { return s == "" })
	found := false
	for _, m := range refs {
		name := m[1] + m[2]
		if name == "" { // $$
			continue
		}
		found = true
		if n, err := strconv.Atoi(name); err == nil {
			if n > re.NumSubexp() {
				v.p.add(f+".extract", "refers to group $%d, but pattern has %d groups", n, re.NumSubexp())
			}
			continue
		}
		if !slices.Contains(named, name) {
			v.p.add(f+".extract", "refers to group %q, which pattern does not define%s; name a group with (?P<%s>...)", name, didYouMean(name, named), name)
		}
	}
	if !found {
		v.p.add(f+".extract", "%q refers to no group of pattern; write $name for a group (?P<name>...)", ft.Extract)
	}
}

func (v *validator) approvals() {
	seen := map[string]string{}
	for i, a := range v.r.Approvals {
		f := fmt.Sprintf("approvals[%d]", i)
		v.name(f+".name", "approval policy", a.Name, seen)
		if a.MinApprovals < 0 {
			v.p.add(f+".minApprovals", "is negative; use 0 or more")
		}
		for j, t := range a.Reviewers.Teams {
			switch tf := fmt.Sprintf("%s.reviewers.teams[%d]", f, j); {
			case strings.TrimSpace(t) == "":
				v.p.add(tf, "is empty; name a team")
			case strings.ContainsFunc(t, unicode.IsSpace) || strings.HasPrefix(strings.TrimPrefix(t, "@"), "/") || strings.HasSuffix(t, "/"):
				v.p.add(tf, "%q is not a team; write org/team or a team name", t)
			}
		}
		for j, u := range a.Reviewers.Users {
			switch uf := fmt.Sprintf("%s.reviewers.users[%d]", f, j); {
			case strings.TrimSpace(u) == "":
				v.p.add(uf, "is empty; name a user")
			case strings.Contains(u, "/"):
				v.p.add(uf, "%q names a team; move it to reviewers.teams", u)
			case strings.ContainsFunc(u, unicode.IsSpace):
				v.p.add(uf, "%q is not a user name; write the login, such as octocat", u)
			}
		}
		switch a.DismissStale {
		case "", StaleCommit, StalePlan:
		default:
			v.p.add(f+".dismissStale", "is %q; use commit (an approval counts only on the commit it was given on) or plan (it counts while the rendered plan is unchanged)", a.DismissStale)
		}
		for j, w := range a.Windows {
			v.window(fmt.Sprintf("%s.windows[%d]", f, j), w)
		}
	}
}

// window checks a deploy window. It loads the time zone, which reads the
// system's zone files (or Go's embedded copy).
func (v *validator) window(f string, w Window) {
	switch w.Kind {
	case WindowAllow, WindowDeny:
	case "":
		v.p.add(f+".kind", "missing; use allow (syncs only inside) or deny (no syncs inside)")
	default:
		v.p.add(f+".kind", "is %q%s; use allow or deny", w.Kind, didYouMean(w.Kind, []string{WindowAllow, WindowDeny}))
	}
	if w.Schedule == "" {
		v.p.add(f+".schedule", "missing; set a five-field cron schedule such as \"0 9 * * 1-5\" (09:00 Monday to Friday)")
	} else if _, err := approvals.ParseCron(w.Schedule); err != nil {
		v.p.add(f+".schedule", "%v", err)
	}
	if w.Duration.Duration <= 0 {
		v.p.add(f+".duration", "missing; set how long the window stays open after each start, such as 8h")
	}
	if _, err := loadZone(w.TimeZone); err != nil {
		v.p.add(f+".timeZone", "%v", err)
	}
}

// providerNeedsSecret reports whether t is a provider type, and whether it
// cannot work without a secret (a webhook URL with a token, an API token or an
// HMAC key).
func providerNeedsSecret(t string) (needs, known bool) {
	switch t {
	case ProviderSlack, ProviderDiscord, ProviderMSTeams, ProviderTelegram, ProviderWebex, ProviderRocket,
		ProviderLark, ProviderGitHub, ProviderGitLab, ProviderGenericHMAC:
		return true, true
	case ProviderGrafana, ProviderAlertmanager, ProviderGeneric:
		return false, true
	}
	return false, false
}

func providerTypeNames() []string {
	return []string{ProviderSlack, ProviderDiscord, ProviderMSTeams, ProviderTelegram, ProviderWebex, ProviderRocket,
		ProviderLark, ProviderGrafana, ProviderAlertmanager, ProviderGeneric, ProviderGenericHMAC, ProviderGitHub, ProviderGitLab}
}

// KnownEvent reports whether an alert may name event.
func KnownEvent(event string) bool {
	return slices.Contains(eventNames(), event)
}

func eventNames() []string {
	return []string{EventAll, EventSyncSucceeded, EventSyncFailed, EventDriftDetected, EventDriftResolved,
		EventHealthDegraded, EventHealthRecovered, EventPreviewSucceeded, EventPreviewFailed,
		EventApprovalGranted, EventApprovalDenied, EventImagePROpened, EventImagePRUpdated, EventImageScanFailed}
}

func (v *validator) notifications() {
	n := v.r.Notifications
	seen := map[string]string{}
	for i, p := range n.Providers {
		f := fmt.Sprintf("notifications.providers[%d]", i)
		v.name(f+".name", "provider", p.Name, seen)
		needs, known := providerNeedsSecret(p.Type)
		switch {
		case p.Type == "":
			v.p.add(f+".type", "missing; use one of %s", strings.Join(providerTypeNames(), ", "))
		case !known:
			v.p.add(f+".type", "%q is not a provider type%s; use one of %s", p.Type, didYouMean(p.Type, providerTypeNames()), strings.Join(providerTypeNames(), ", "))
		}
		if p.Address != "" {
			if u, err := url.Parse(p.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.p.add(f+".address", "is not an http(s) URL; use https://host/path")
			} else if u.User != nil {
				v.p.add(f+".address", "contains credentials; put the URL in a secret and name it in secretRef instead")
			}
		}
		v.secretRef(f+".secretRef", p.SecretRef)
		empty := p.SecretRef == SecretRef{}
		switch {
		case known && needs && empty:
			v.p.add(f+".secretRef", "missing; a %s provider needs a secret: add secretRef: {env: VARIABLE} or {file: /path}", p.Type)
		case known && empty && p.Address == "":
			v.p.add(f, "has neither address nor secretRef; set address, or secretRef: {env: VARIABLE} naming where the address is")
		}
	}
	for i, a := range n.Alerts {
		f := fmt.Sprintf("notifications.alerts[%d]", i)
		if len(a.Providers) == 0 {
			v.p.add(f+".providers", "missing; name at least one provider from notifications.providers")
		}
		for j, p := range a.Providers {
			if _, ok := seen[p]; !ok {
				v.p.add(fmt.Sprintf("%s.providers[%d]", f, j), "provider %q is not defined%s; add it under notifications.providers or fix the name", p, didYouMean(p, keys(seen)))
			}
		}
		if len(a.Events) == 0 {
			v.p.add(f+".events", "missing; name at least one event, or \"*\" for all")
		}
		for j, e := range a.Events {
			if !KnownEvent(e) {
				v.p.add(fmt.Sprintf("%s.events[%d]", f, j), "%q is not an event%s; use one of %s", e, didYouMean(e, eventNames()), strings.Join(eventNames(), ", "))
			}
		}
		switch a.Severity {
		case "", SeverityInfo, SeverityError:
		default:
			v.p.add(f+".severity", "is %q; use info or error", a.Severity)
		}
		for j, app := range a.Apps {
			if _, ok := v.r.App(app); !ok {
				v.p.add(fmt.Sprintf("%s.apps[%d]", f, j), "app %q is not defined; name an app from apps", app)
			}
		}
	}
}

// secretRef checks where a secret comes from. It never quotes the values: a
// user may have pasted the secret itself.
func (v *validator) secretRef(f string, s SecretRef) {
	if s.Env != "" && s.File != "" {
		v.p.add(f, "sets both env and file; keep one")
	}
	if s.Env != "" && !envName.MatchString(s.Env) {
		v.p.add(f+".env", "is not an environment variable name; name the variable that holds the secret (such as SLACK_WEBHOOK_URL), never the secret itself")
	}
	if s.File != "" && (strings.Contains(s.File, "://") || strings.ContainsFunc(s.File, unicode.IsSpace)) {
		v.p.add(f+".file", "is not a file path; name the file that holds the secret (such as /var/run/secrets/slack/url), never the secret itself")
	}
}

func (v *validator) sources() {
	for i, a := range v.r.Sources.Allow {
		if !allowEntry.MatchString(a) {
			v.p.add(fmt.Sprintf("sources.allow[%d]", i), "%q is not a URL prefix; use https://host/org, ssh://host/org or git@host:org", a)
		}
	}
}

func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
