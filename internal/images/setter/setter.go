// Package setter rewrites the values that image policy markers point at, in
// the files of a Git working tree, changing no other byte.
//
// A marker is a line comment after a single-line scalar, in the form Flux's
// image automation reads:
//
//	image: ghcr.io/stefanprodan/podinfo:6.7.0 # {"$imagepolicy": "podinfo"}
//	tag: "6.7.0" # {"$imagepolicy": "podinfo:tag"}
//	- ghcr.io/stefanprodan/podinfo # {"$imagepolicy": "podinfo:name"}
//	digest: sha256:… # {"$imagepolicy": "podinfo:digest"}
//
// NAME sets the whole reference (image:tag, or image:tag@digest when the
// update carries a digest), NAME:tag the tag, NAME:name the repository and
// NAME:digest the digest. Policies are declared in gitops.yaml and have no
// namespace, so Flux's NAMESPACE:NAME and NAMESPACE:NAME:FIELD forms are
// errors that say which name to write.
//
// Markers work in any .yaml or .yml file: manifests (multi-document too),
// Helm values files, kustomization.yaml images entries and gitops.yaml app
// image overrides. The marked scalar may be plain, 'single' or "double"
// quoted, a mapping value or a sequence item, in block style or alone on its
// line inside a flow collection; a marker that follows a flow collection
// (images: [{name: x, newTag: "1.0"}] # …) marks no single value and is an
// error, so overrides that carry markers are written in block style. Only
// markers drive writes: an unmarked images entry is never touched. A marker on
// a comment-only line (commented-out YAML) is ignored, as Flux ignores it; one
// after a key whose value is not a scalar on the same line, after an alias
// or after a block scalar (| or >) is an error.
//
// Edits are byte-minimal: only the bytes of each marked scalar change, so
// comments, key order, indentation, quoting, trailing spaces and line endings
// (LF or CRLF) stay as they are, and a second run changes nothing. A file is
// parsed only when it mentions $imagepolicy, and is then refused above
// [DefaultMaxFileSize]; aliases are never expanded, since only scalars are
// edited.
package setter

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// DefaultMaxFileSize bounds a file that holds a marker, unless
// Options.MaxFileSize says otherwise.
const DefaultMaxFileSize = 1 << 20

// marker is the key of a marker's JSON object; a file without it is never
// parsed.
const marker = "$imagepolicy"

// Update is the new image of one policy.
type Update struct {
	Policy string // policy name, as in gitops.yaml images[].name
	Image  string // repository, e.g. ghcr.io/stefanprodan/podinfo
	Tag    string // e.g. 6.7.1
	Digest string // "" or sha256:…; when set (the policy pins), NAME markers write image:tag@digest
}

// Ref is the whole reference a NAME marker writes.
func (u Update) Ref() string {
	if u.Digest != "" {
		return u.Image + ":" + u.Tag + "@" + u.Digest
	}
	return u.Image + ":" + u.Tag
}

// Edit is one changed value.
type Edit struct {
	File   string // slash-separated path, as a key of the files given to Apply
	Line   int    // 1-based line of the value
	Policy string
	// Old and New are the values as YAML reads them, without quotes.
	Old, New string
	// Quoted is set when New was written in double quotes although the
	// value was plain: plain, it would read as a number, boolean or null.
	Quoted bool
}

// Result is the outcome of a run over a tree.
type Result struct {
	Files map[string][]byte // only the changed files, with their full new content
	Edits []Edit            // by file, then line
}

// Options tunes Apply.
type Options struct {
	// Policies names every image policy gitops.yaml declares. A marker
	// naming a declared policy that has no update is left as it is; a marker
	// naming an undeclared one is an error. Nil means the keys of updates.
	Policies []string
	// MaxFileSize bounds, in bytes, a file that holds a marker; 0 means
	// DefaultMaxFileSize.
	MaxFileSize int
}

// Apply sets every marked value of files (keyed by slash-separated path) to
// the update of its policy. It reports every problem it finds, each naming
// file:line, and writes nothing when there is any.
func Apply(files map[string][]byte, updates map[string]Update, opts Options) (Result, error) {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(updates)) {
		if err := validate(name, updates[name]); err != nil {
			errs = append(errs, err)
		}
	}
	declared := opts.Policies
	if declared == nil {
		declared = slices.AppendSeq([]string{}, maps.Keys(updates))
	}
	res := Result{Files: map[string][]byte{}}
	errs = append(errs, eachFile(files, declared, opts.MaxFileSize, func(f *file) {
		f.updates = updates
		out, edits := f.apply()
		if len(f.errs) == 0 && len(edits) > 0 {
			res.Files[f.name] = out
			res.Edits = append(res.Edits, edits...)
		}
	})...)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	return res, nil
}

// eachFile calls visit with every YAML file of files (by path) that holds a
// marker, and returns the errors of files too large to read and those
// visit recorded in f.errs.
func eachFile(files map[string][]byte, policies []string, maxFileSize int, visit func(f *file)) []error {
	var declared map[string]bool // nil: any name is declared
	if policies != nil {
		declared = map[string]bool{}
		for _, name := range policies {
			declared[name] = true
		}
	}
	limit := cmp.Or(maxFileSize, DefaultMaxFileSize)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if !isYAML(name) || !bytes.Contains(data, []byte(marker)) {
			continue
		}
		if len(data) > limit {
			errs = append(errs, fmt.Errorf("%s: %d bytes, more than the %d a file with an image policy marker may have; split the file or move the marker out of it", name, len(data), limit))
			continue
		}
		f := &file{name: name, data: data, declared: declared}
		visit(f)
		errs = append(errs, f.errs...)
	}
	return errs
}

func isYAML(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

var (
	// Image names as registries take them: lower-case path components,
	// an optional host with a port (an IPv6 host in brackets).
	imageRE = regexp.MustCompile(`^[A-Za-z0-9\[][A-Za-z0-9.:\[\]_-]*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
	tagRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// Digests as the OCI image spec writes them.
	digestRE = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

// validate checks that u writes only a reference, never YAML syntax.
func validate(name string, u Update) error {
	switch {
	case u.Policy != "" && u.Policy != name:
		return fmt.Errorf("the update of image policy %q names policy %q; key updates by their policy", name, u.Policy)
	case !imageRE.MatchString(u.Image) || len(u.Image) > 255:
		return fmt.Errorf("image policy %q: %q is not an image name", name, u.Image)
	case !tagRE.MatchString(u.Tag):
		return fmt.Errorf("image policy %q: %q is not an image tag", name, u.Tag)
	case u.Digest != "" && !digestRE.MatchString(u.Digest):
		return fmt.Errorf("image policy %q: %q is not an image digest", name, u.Digest)
	}
	return nil
}

// file is one YAML file being edited.
type file struct {
	name     string
	data     []byte
	updates  map[string]Update
	declared map[string]bool
	lines    []int // offsets of line starts, by YAML's idea of a line break
	errs     []error
}

// replacement is the new text of data[start:end].
type replacement struct {
	start, end int
	text       string
}

func (f *file) errorf(line int, format string, args ...any) {
	f.errs = append(f.errs, fmt.Errorf("%s:%d: "+format, append([]any{f.name, line}, args...)...))
}

// apply returns the new content of the file and its edits, or records
// errors in f.errs.
func (f *file) apply() ([]byte, []Edit) {
	docs, err := f.parse()
	if err != nil {
		f.errs = append(f.errs, err)
		return nil, nil
	}
	f.lines = lineStarts(f.data)
	var reps []replacement
	var edits []Edit
	for _, doc := range docs {
		for _, n := range f.marked(doc) {
			if rep, edit, ok := f.set(n); ok {
				reps = append(reps, rep)
				edits = append(edits, edit)
			}
		}
	}
	if len(f.errs) > 0 || len(reps) == 0 {
		return nil, nil
	}
	slices.SortFunc(reps, func(a, b replacement) int { return cmp.Compare(a.start, b.start) })
	slices.SortStableFunc(edits, func(a, b Edit) int { return cmp.Compare(a.Line, b.Line) })
	var out bytes.Buffer
	out.Grow(len(f.data) + 64*len(reps))
	last := 0
	for _, r := range reps {
		out.Write(f.data[last:r.start])
		out.WriteString(r.text)
		last = r.end
	}
	out.Write(f.data[last:])
	return out.Bytes(), edits
}

// lineNumberRE finds the line in the YAML parser's errors.
var lineNumberRE = regexp.MustCompile(`line (\d+)`)

// parse reads every document of the file into nodes, which keep aliases as
// they are (nothing is expanded).
func (f *file) parse() (docs []*yaml.Node, err error) {
	defer func() {
		// The parser reads a file anyone may push; a crash in it is one
		// more reason the file cannot be edited, not a reason to stop.
		if r := recover(); r != nil {
			docs, err = nil, fmt.Errorf("%s: the YAML parser failed on this file (%v); simplify the file around its image policy markers", f.name, r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(f.data))
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if m := lineNumberRE.FindStringSubmatch(msg); m != nil {
				msg = strings.TrimPrefix(strings.TrimPrefix(msg, m[0]), ": ")
				return nil, fmt.Errorf("%s:%s: not valid YAML (%s); fix the file, it holds an image policy marker", f.name, m[1], msg)
			}
			return nil, fmt.Errorf("%s: not valid YAML (%s); fix the file, it holds an image policy marker", f.name, msg)
		}
		docs = append(docs, doc)
	}
}

func hasMarker(n *yaml.Node) bool { return strings.Contains(n.LineComment, marker) }

// marked returns the scalars under n that carry a marker in their line
// comment, and records an error for every marker on something else.
// Markers in head and foot comments sit on lines of their own and are
// ignored.
func (f *file) marked(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			if hasMarker(n) {
				out = append(out, n)
			}
			return
		case yaml.AliasNode:
			if hasMarker(n) {
				f.errorf(n.Line, "image policy marker on an alias (*%s); put the marker on the anchored value instead", n.Value)
			}
			return
		case yaml.MappingNode, yaml.SequenceNode:
			if hasMarker(n) {
				what := map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "sequence"}[n.Kind]
				if n.Style&yaml.FlowStyle != 0 {
					what = "flow " + what + " (" + map[yaml.Kind]string{yaml.MappingNode: "{…}", yaml.SequenceNode: "[…]"}[n.Kind] + ")"
				}
				f.errorf(n.Line, "image policy marker after a %s, not after a single value; write collections that hold markers in block style, with the marker after the value it sets", what)
			}
		case yaml.DocumentNode:
			if hasMarker(n) {
				f.errorf(n.Line, "image policy marker outside any value; put the marker after the value it sets")
			}
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if hasMarker(k) {
					if v.Kind == yaml.ScalarNode && v.Line == k.Line && !hasMarker(v) {
						// The parser hangs the comment of a key with an
						// empty value on the key.
						v.LineComment = k.LineComment
					} else {
						f.errorf(k.Line, "image policy marker on key %q, whose value is not a scalar on the same line; put the marker after the single-line value it sets", k.Value)
					}
				} else {
					walk(k)
				}
				walk(v)
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// read finds the bytes of the marked scalar n and the policy and field its
// marker names. It reports false on an error (recorded in f.errs).
func (f *file) read(n *yaml.Node) (start, end int, policy, field string, ok bool) {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		f.errorf(n.Line, "image policy marker after a block scalar (| or >); write the value as a single-line scalar")
		return 0, 0, "", "", false
	}
	if n.Value == "" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		f.errorf(n.Line, "image policy marker after an empty value; write a value (the current one, say) before the marker")
		return 0, 0, "", "", false
	}
	start, end, comment, ok := f.locate(n)
	if !ok {
		f.errorf(n.Line, "the value an image policy marker sets must be on one line with its marker; join them")
		return 0, 0, "", "", false
	}
	policy, field, err := parseMarker(comment)
	if err != nil {
		f.errorf(n.Line, "%v", err)
		return 0, 0, "", "", false
	}
	if f.declared != nil && !f.declared[policy] {
		f.errorf(n.Line, "marker names image policy %q, which gitops.yaml does not declare; fix the name or add the policy", policy)
		return 0, 0, "", "", false
	}
	return start, end, policy, field, true
}

// set works out the new text of the marked scalar n. It reports false when
// n stays as it is, or on an error (recorded in f.errs).
func (f *file) set(n *yaml.Node) (replacement, Edit, bool) {
	start, end, policy, field, ok := f.read(n)
	if !ok {
		return replacement{}, Edit{}, false
	}
	u, ok := f.updates[policy]
	if !ok {
		return replacement{}, Edit{}, false
	}
	var value string
	switch field {
	case "":
		value = u.Ref()
	case "tag":
		value = u.Tag
	case "name":
		value = u.Image
	case "digest":
		if u.Digest == "" {
			f.errorf(n.Line, "marker wants the digest of image policy %q, which has none; set digest: pin on the policy in gitops.yaml, or mark the value %q or %q instead", policy, policy+":tag", policy)
			return replacement{}, Edit{}, false
		}
		value = u.Digest
	}
	if value == n.Value {
		return replacement{}, Edit{}, false
	}
	text, quoted := render(value, n.Style)
	return replacement{start: start, end: end, text: text},
		Edit{File: f.name, Line: n.Line, Policy: policy, Old: n.Value, New: value, Quoted: quoted}, true
}

// locate finds the bytes of the single-line scalar n, and the comment after
// it on its line. It reports false when n is not alone with its comment on
// one line, or when the bytes found do not read back as n's value: a
// mismatch is never written.
func (f *file) locate(n *yaml.Node) (start, end int, comment string, ok bool) {
	p, ok := f.offset(n.Line, n.Column)
	if !ok {
		return 0, 0, "", false
	}
	eol := f.lineEnd(p)
	line := f.data[:eol]
	// Skip an anchor (&a) and a tag (!!str) before the value.
	for p < eol && (line[p] == '&' || line[p] == '!') {
		for p < eol && line[p] != ' ' && line[p] != '\t' {
			p++
		}
		for p < eol && (line[p] == ' ' || line[p] == '\t') {
			p++
		}
	}
	start = p
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if p >= eol || line[p] != '"' {
			return 0, 0, "", false
		}
		for p++; p < eol && line[p] != '"'; p++ {
			if line[p] == '\\' {
				p++
			}
		}
		if p >= eol {
			return 0, 0, "", false
		}
		end = p + 1
	case n.Style&yaml.SingleQuotedStyle != 0:
		if p >= eol || line[p] != '\'' {
			return 0, 0, "", false
		}
		for p++; p < eol; p++ {
			if line[p] == '\'' {
				if p+1 < eol && line[p+1] == '\'' {
					p++
					continue
				}
				break
			}
		}
		if p >= eol {
			return 0, 0, "", false
		}
		end = p + 1
	default:
		end = start + len(n.Value)
		if end > eol || string(line[start:end]) != n.Value {
			return 0, 0, "", false
		}
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 && !readsAs(line[start:end], n.Value) {
		return 0, 0, "", false
	}
	rest := bytes.TrimLeft(line[end:], " \t")
	if len(rest) == len(line[end:]) || len(rest) == 0 || rest[0] != '#' {
		return 0, 0, "", false
	}
	return start, end, string(rest), true
}

// readsAs reports whether the quoted scalar raw reads as value.
func readsAs(raw []byte, value string) bool {
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil || len(n.Content) != 1 {
		return false
	}
	return n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Value == value
}

// parseMarker reads a marker comment: # {"$imagepolicy": "NAME[:FIELD]"}.
// It returns the policy and the field ("", tag, name or digest).
func parseMarker(comment string) (policy, field string, err error) {
	text := strings.TrimSpace(strings.TrimLeft(comment, "#"))
	malformed := fmt.Errorf(`malformed image policy marker %q; write # {"$imagepolicy": "NAME"} (or NAME:tag, NAME:name, NAME:digest) and nothing else in the comment`, comment)
	dec := json.NewDecoder(strings.NewReader(text))
	var obj map[string]json.RawMessage
	if dec.Decode(&obj) != nil || dec.InputOffset() != int64(len(text)) || len(obj) != 1 {
		return "", "", malformed
	}
	var value string
	if raw, ok := obj[marker]; !ok || json.Unmarshal(raw, &value) != nil {
		return "", "", malformed
	}
	parts := strings.Split(value, ":")
	isField := func(s string) bool { return s == "tag" || s == "name" || s == "digest" }
	switch {
	case slices.Contains(parts, ""):
		return "", "", malformed
	case len(parts) == 1:
		return parts[0], "", nil
	case len(parts) == 2 && isField(parts[1]):
		return parts[0], parts[1], nil
	case len(parts) == 2:
		return "", "", fmt.Errorf("marker %q has Flux's NAMESPACE:NAME form, but image policies here have no namespace; write %q", value, parts[1])
	case len(parts) == 3 && isField(parts[2]):
		return "", "", fmt.Errorf("marker %q has Flux's NAMESPACE:NAME:FIELD form, but image policies here have no namespace; write %q", value, parts[1]+":"+parts[2])
	case len(parts) == 3:
		return "", "", fmt.Errorf("marker %q ends in %q, which is not a field; write NAME, NAME:tag, NAME:name or NAME:digest", value, parts[2])
	}
	return "", "", malformed
}

// render writes value in the style of the scalar it replaces. A plain value
// that would read as anything but this string is double-quoted instead.
func render(value string, style yaml.Style) (text string, quoted bool) {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		return doubleQuote(value), false
	case style&yaml.SingleQuotedStyle != 0:
		return "'" + strings.ReplaceAll(value, "'", "''") + "'", false
	case plainIsString(value):
		return value, false
	}
	return doubleQuote(value), true
}

func doubleQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var (
	// YAML 1.1 (read by Helm and kubectl through sigs.k8s.io/yaml) takes
	// these for booleans, and sexagesimal numbers for numbers.
	yaml11Bools       = []string{"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
	yaml11Sexagesimal = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$`)
	yamlFloat         = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
)

// plainIsString reports whether value, written plain, reads back as this
// string under YAML 1.2 and 1.1 alike, in block and flow context.
func plainIsString(value string) bool {
	if value == "" || strings.ContainsAny(value, ",[]{}# \t") || slices.Contains(yaml11Bools, value) ||
		yaml11Sexagesimal.MatchString(value) {
		return false
	}
	digits := strings.ReplaceAll(value, "_", "")
	if _, err := strconv.ParseInt(digits, 0, 64); err == nil {
		return false
	}
	if _, err := strconv.ParseUint(digits, 0, 64); err == nil {
		return false
	}
	if yamlFloat.MatchString(digits) {
		return false
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(value), &n); err != nil || len(n.Content) != 1 {
		return false
	}
	s := n.Content[0]
	return s.Kind == yaml.ScalarNode && s.Style == 0 && s.Tag == "!!str" && s.Value == value
}

// lineStarts returns the offset of every line's start, breaking lines where
// the YAML parser does (CRLF, CR, LF, NEL, LS, PS); a leading byte order
// mark is not part of line 1.
func lineStarts(data []byte) []int {
	starts := []int{0}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		starts[0] = 3
	}
	for i := starts[0]; i < len(data); {
		if w := breakWidth(data[i:]); w > 0 {
			i += w
			starts = append(starts, i)
			continue
		}
		i++
	}
	return starts
}

// breakWidth is the length of the line break at the start of b, or 0.
func breakWidth(b []byte) int {
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		return 2
	case len(b) > 0 && (b[0] == '\r' || b[0] == '\n'):
		return 1
	case bytes.HasPrefix(b, []byte("\xc2\x85")):
		return 2
	case bytes.HasPrefix(b, []byte("\xe2\x80\xa8")), bytes.HasPrefix(b, []byte("\xe2\x80\xa9")):
		return 3
	}
	return 0
}

// offset turns the parser's 1-based line and column (counted in
// characters) into a byte offset.
func (f *file) offset(line, column int) (int, bool) {
	if line < 1 || line > len(f.lines) || column < 1 {
		return 0, false
	}
	p := f.lines[line-1]
	for range column - 1 {
		if p >= len(f.data) || breakWidth(f.data[p:]) > 0 {
			return 0, false
		}
		_, w := utf8.DecodeRune(f.data[p:])
		p += w
	}
	return p, true
}

// lineEnd is the offset of the line break (or end of file) after p.
func (f *file) lineEnd(p int) int {
	for p < len(f.data) && breakWidth(f.data[p:]) == 0 {
		p++
	}
	return p
}
