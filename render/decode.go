package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// maxListDepth bounds how deeply List kinds may nest.
const maxListDepth = 4

// decoded is what one YAML stream held.
type decoded struct {
	objects []*unstructured.Unstructured
	// foreign counts documents that are not Kubernetes objects (no apiVersion
	// or kind), such as a values file or a CI configuration.
	foreign int
}

// decodeObjects splits a multi-document YAML or JSON stream into objects,
// expanding List kinds. name is used in messages only. Alias expansion is
// bounded by the YAML parser; the caller bounds the stream's size.
func decodeObjects(name string, data []byte) (decoded, error) {
	var out decoded
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: document %d: cannot split YAML: %w", name, doc, err)
		}
		if isBlankDocument(raw) {
			continue
		}
		jsonData, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return out, fmt.Errorf("%s: document %d: invalid YAML: %w", name, doc, cleanYAMLError(err))
		}
		if bytes.Equal(bytes.TrimSpace(jsonData), []byte("null")) {
			continue
		}
		var content map[string]any
		if err := utiljson.Unmarshal(jsonData, &content); err != nil {
			// A scalar or a sequence at the top: not a Kubernetes object.
			out.foreign++
			continue
		}
		objs, foreign, err := objectsOf(content, 0)
		if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		out.objects = append(out.objects, objs...)
		out.foreign += foreign
	}
}

// objectsOf turns one decoded document into objects, expanding Lists.
func objectsOf(content map[string]any, depth int) ([]*unstructured.Unstructured, int, error) {
	apiVersion, _ := content["apiVersion"].(string)
	kind, _ := content["kind"].(string)
	if apiVersion == "" || kind == "" {
		return nil, 1, nil
	}
	obj := &unstructured.Unstructured{Object: content}
	if obj.IsList() {
		if depth >= maxListDepth {
			return nil, 0, fmt.Errorf("%s nested more than %d deep", kind, maxListDepth)
		}
		items, ok := content["items"].([]any)
		if !ok && content["items"] != nil {
			return nil, 0, fmt.Errorf("%s: items is not a list", kind)
		}
		var out []*unstructured.Unstructured
		for i, item := range items {
			m, ok := item.(map[string]any)
			if !ok {
				return nil, 0, fmt.Errorf("%s: items[%d] is not an object", kind, i)
			}
			objs, foreign, err := objectsOf(m, depth+1)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: items[%d]: %w", kind, i, err)
			}
			if foreign > 0 {
				return nil, 0, fmt.Errorf("%s: items[%d] has no apiVersion or kind", kind, i)
			}
			out = append(out, objs...)
		}
		return out, 0, nil
	}
	if obj.GetName() == "" && obj.GetGenerateName() == "" {
		return nil, 0, fmt.Errorf("%s %s has no metadata.name; give the object a name", apiVersion, kind)
	}
	return []*unstructured.Unstructured{obj}, 0, nil
}

// isBlankDocument reports whether a document holds only comments and space.
func isBlankDocument(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || string(line) == "---" {
			continue
		}
		return false
	}
	return true
}

// cleanYAMLError drops the parser's "error converting YAML to JSON:" prefix,
// which says nothing to a user.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	return errors.New(msg)
}

// estimateYAMLNodes estimates, erring high, how many nodes YAML data decodes
// to, in one pass and without parsing: a flow list "[a,a,…]" holds a node
// for every two bytes and decodes to a hundred times its size, so what a
// file decodes to is bounded by this, not by its bytes. Each line counts as
// a node, each mapping value and flow indicator ("[", "{", ",") as another;
// block scalars, quoted scalars and comments count as text.
func estimateYAMLNodes(data []byte) int64 {
	var n int64
	block := -1    // the indentation of the line that opened a block scalar
	var quote byte // the quote of a scalar that spans lines
	for line := range bytes.Lines(data) {
		line = bytes.TrimRight(line, "\r\n")
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		content := line[indent:]
		if block >= 0 {
			if len(bytes.TrimSpace(content)) == 0 || indent > block {
				continue
			}
			block = -1
		}
		if len(content) == 0 {
			continue
		}
		n++
		end := len(content)
	scan:
		for i := 0; i < len(content); i++ {
			c := content[i]
			if quote != 0 {
				switch {
				case quote == '"' && c == '\\':
					i++
				case c == quote && quote == '\'' && i+1 < len(content) && content[i+1] == '\'':
					i++
				case c == quote:
					quote = 0
				}
				continue
			}
			switch c {
			case '"', '\'':
				// A quote opens a scalar only where a token starts.
				if i == 0 || strings.IndexByte(" \t[{,:-", content[i-1]) >= 0 {
					quote = c
				}
			case '#':
				if i == 0 || content[i-1] == ' ' || content[i-1] == '\t' {
					end = i
					break scan
				}
			case '[', '{', ',':
				n++
			case ':':
				if i+1 == len(content) || content[i+1] == ' ' || content[i+1] == '\t' {
					n++
				}
			}
		}
		if quote == 0 && opensBlockScalar(bytes.TrimRight(content[:end], " \t")) {
			block = indent
		}
	}
	return n
}

// opensBlockScalar reports whether a line ends with a block scalar header
// ("key: |", "- >-", "|2").
func opensBlockScalar(content []byte) bool {
	i := len(content)
	for i > 0 && (content[i-1] == '+' || content[i-1] == '-' || (content[i-1] >= '0' && content[i-1] <= '9')) {
		i--
	}
	if i == 0 || (content[i-1] != '|' && content[i-1] != '>') {
		return false
	}
	return i == 1 || content[i-2] == ' ' || content[i-2] == '\t'
}
