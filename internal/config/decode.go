package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxAliasVisits bounds the values the schema walk visits through aliases and
// merge keys. Real files reuse a few anchors; only aliases that expand
// exponentially (a "billion laughs" file) reach it.
const maxAliasVisits = 100_000

// walker checks a YAML tree against the Go schema before the YAML library
// decodes it, so that unknown fields, repeated keys and wrong shapes are
// reported with their line, field path and a suggestion, and it records the
// line of every field path for Validate. Free-form values (helm.values) are
// left to the YAML library, which bounds their alias expansion itself.
type walker struct {
	p          problems
	aliasDepth int // > 0 while walking through an alias
	visits     int // values visited through aliases
	bombed     bool
	fields     map[reflect.Type]map[string]reflect.Type
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, field string) {
	if !w.tick(n, field) {
		return
	}
	if _, ok := w.p.lines[field]; !ok {
		w.p.lines[field] = n.Line
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			w.walk(n.Content[0], t, field)
		}
		return
	case yaml.AliasNode:
		w.aliasDepth++
		w.walk(n.Alias, t, field)
		w.aliasDepth--
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() {
		if _, err := parseDuration(n); err != nil {
			w.p.addAt(n.Line, field, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		w.mapping(n, t, field)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.p.addAt(n.Line, field, "expected a list, got a %s; write it as [a, b] or as lines starting with \"- \"", kindName(n))
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", field, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.p.addAt(n.Line, field, "expected a mapping of keys to values, got a %s", kindName(n))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			hint := ""
			if strings.HasSuffix(field, ".patch") {
				hint = "; write the patch as a block string (patch: |) followed by the indented patch"
			}
			w.p.addAt(n.Line, field, "expected a string, got a %s%s", kindName(n), hint)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.p.addAt(n.Line, field, "expected true or false, got a %s", kindName(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			w.p.addAt(n.Line, field, "expected a whole number, got a %s", kindName(n))
		}
	}
}

// mapping checks a YAML mapping against a struct: every key a known field,
// none repeated, merge keys (<<: *anchor) checked against the same struct.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, field string) {
	noun := typeNoun(t)
	if n.Kind != yaml.MappingNode {
		w.p.addAt(n.Line, field, "expected a mapping (%s: %s), got a %s", noun, strings.Join(fieldNames(t), ", "), kindName(n))
		return
	}
	fields := w.fields[t]
	if fields == nil {
		fields = fieldTypes(t)
		w.fields[t] = fields
	}
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.p.addAt(k.Line, field, "a key in %s is a %s; keys are plain field names", noun, kindName(k))
			continue
		}
		child := join(field, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("field `%s` not found in %s", shortKey(k.Value), noun)
			if s := suggest(k.Value, fieldNames(t)); s != "" {
				msg += fmt.Sprintf("; did you mean `%s`?", s)
			} else {
				msg += "; known fields: " + strings.Join(fieldNames(t), ", ")
			}
			w.p.addAt(k.Line, field, "%s", msg)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			w.p.addAt(k.Line, child, "field `%s` is repeated (first at line %d); keep one", k.Value, prev)
			continue
		}
		seen[k.Value] = k.Line
		w.p.lines[child] = k.Line
		w.walk(v, ft, child)
	}
	for _, m := range merges {
		w.merge(m, t, field, true)
	}
}

func (w *walker) merge(m *yaml.Node, t reflect.Type, field string, top bool) {
	if !w.tick(m, field) {
		return
	}
	target := m
	if m.Kind == yaml.AliasNode {
		target = m.Alias
		w.aliasDepth++
		defer func() { w.aliasDepth-- }()
	}
	switch {
	case target.Kind == yaml.MappingNode:
		w.mapping(target, t, field)
	case target.Kind == yaml.SequenceNode && m.Kind != yaml.AliasNode && top:
		for _, c := range target.Content {
			w.merge(c, t, field, false)
		}
	default:
		w.p.addAt(m.Line, field, "a merge key (<<) takes a mapping or a list of mappings, got a %s", kindName(target))
	}
}

// tick counts a visit and reports whether the walk may go on.
func (w *walker) tick(n *yaml.Node, field string) bool {
	if w.bombed {
		return false
	}
	if w.aliasDepth == 0 {
		return true
	}
	if w.visits++; w.visits > maxAliasVisits {
		w.bombed = true
		w.p.addAt(n.Line, field, "the document expands to too many values through aliases (*name); write the values out instead")
		return false
	}
	return true
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// fieldTypes maps the YAML names of t's fields to their types.
func fieldTypes(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			m[name] = f.Type
		}
	}
	return m
}

// fieldNames lists the YAML names of t's fields in declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// typeNoun names a schema type the way a user thinks of it.
func typeNoun(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Repository]():
		return "the repository file"
	case reflect.TypeFor[App]():
		return "app"
	case reflect.TypeFor[GitSource]():
		return "source"
	case reflect.TypeFor[Patch]():
		return "patch"
	case reflect.TypeFor[Selector]():
		return "patch target"
	case reflect.TypeFor[Image]():
		return "image override"
	case reflect.TypeFor[Helm]():
		return "helm"
	case reflect.TypeFor[Wait]():
		return "wait"
	case reflect.TypeFor[ImagePolicy]():
		return "image policy"
	case reflect.TypeFor[TagPolicy]():
		return "policy"
	case reflect.TypeFor[SemverPolicy]():
		return "semver policy"
	case reflect.TypeFor[OrderPolicy]():
		return "order policy"
	case reflect.TypeFor[FilterTags]():
		return "filterTags"
	case reflect.TypeFor[PullRequest]():
		return "pullRequest"
	case reflect.TypeFor[Approval]():
		return "approval policy"
	case reflect.TypeFor[Reviewers]():
		return "reviewers"
	case reflect.TypeFor[Window]():
		return "deploy window"
	case reflect.TypeFor[Notifications]():
		return "notifications"
	case reflect.TypeFor[Provider]():
		return "provider"
	case reflect.TypeFor[SecretRef]():
		return "secretRef"
	case reflect.TypeFor[Alert]():
		return "alert"
	case reflect.TypeFor[SourcePolicy]():
		return "sources"
	}
	return strings.ToLower(t.Name())
}

// kindName describes a node for messages without quoting its value, which
// might be a secret pasted in the wrong place.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		if n.Alias != nil {
			return kindName(n.Alias)
		}
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		case "!!null":
			return "null"
		}
		return "string"
	}
	return "value"
}

// suggest returns the candidate closest to s when it is close enough to be
// the intended one.
func suggest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := distance(strings.ToLower(s), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	if bestDist >= 0 && bestDist <= limit && bestDist < len(best) {
		return best
	}
	return ""
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// maxKeyShown bounds an unknown key quoted in a message: a file that is not a
// repository file (a linked secret, say) shows no more than a field name.
const maxKeyShown = 40

// shortKey cuts an unknown key to maxKeyShown runes for messages.
func shortKey(k string) string {
	if r := []rune(k); len(r) > maxKeyShown {
		return string(r[:maxKeyShown]) + "…"
	}
	return k
}
