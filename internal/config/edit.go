package config

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// SetImageSuspend sets `suspend:` of the image policy named policy in the
// bytes of a gitops.yaml file, touching nothing else: every other byte,
// comment and line ending stays. It changes an existing plain `suspend:`
// value, or adds `suspend: true` on the line after the policy's name. It
// reports whether the bytes changed; asking for the value already there
// changes nothing.
func SetImageSuspend(data []byte, policy string, suspend bool) ([]byte, bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("%s: %w", FileName, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false, fmt.Errorf("%s is not a mapping: it declares no image policies", FileName)
	}
	images := mappingValue(doc.Content[0], "images")
	if images == nil || images.Kind != yaml.SequenceNode {
		return nil, false, fmt.Errorf("%s declares no image policies (images:), so there is no %q", FileName, policy)
	}
	want := "false"
	if suspend {
		want = "true"
	}
	var names []string
	for i, item := range images.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		name := mappingValue(item, "name")
		if name == nil {
			continue
		}
		names = append(names, name.Value)
		if name.Value != policy {
			continue
		}
		if images.Style&yaml.FlowStyle != 0 || item.Style&yaml.FlowStyle != 0 {
			return nil, false, fmt.Errorf("%s:%d: images[%d] is written in flow style ({…}); set suspend: %s in it by hand", FileName, item.Line, i, want)
		}
		if v := mappingValue(item, "suspend"); v != nil {
			if v.Kind != yaml.ScalarNode || v.Style != 0 || v.Value == want {
				if v.Value == want {
					return data, false, nil
				}
				return nil, false, fmt.Errorf("%s:%d: images[%d].suspend is not a plain true or false; set it to %s by hand", FileName, v.Line, i, want)
			}
			start, err := offset(data, v.Line, v.Column)
			if err != nil {
				return nil, false, err
			}
			if !bytes.HasPrefix(data[start:], []byte(v.Value)) {
				return nil, false, fmt.Errorf("%s:%d: images[%d].suspend is not where the parser put it; set it to %s by hand", FileName, v.Line, i, want)
			}
			out := append(append(append([]byte(nil), data[:start]...), want...), data[start+len(v.Value):]...)
			return out, true, nil
		}
		if !suspend {
			return data, false, nil
		}
		if name.Style != 0 && name.Style != yaml.DoubleQuotedStyle && name.Style != yaml.SingleQuotedStyle {
			return nil, false, fmt.Errorf("%s:%d: images[%d].name spans lines; add suspend: true by hand", FileName, name.Line, i)
		}
		key := item.Content[0]
		for k := 0; k+1 < len(item.Content); k += 2 {
			if item.Content[k+1] == name {
				key = item.Content[k]
			}
		}
		// The new key goes on the line after the name, indented as the
		// name's key is.
		end, err := offset(data, name.Line+1, 1)
		if err != nil {
			// The name is on the file's last line, which has no line end.
			end = len(data)
		}
		eol := "\n"
		if bytes.Contains(data, []byte("\r\n")) {
			eol = "\r\n"
		}
		line := strings.Repeat(" ", key.Column-1) + "suspend: true" + eol
		head := data[:end]
		if end == len(data) && !bytes.HasSuffix(data, []byte("\n")) {
			head = append(append([]byte(nil), data...), eol...)
		}
		out := append(append(append([]byte(nil), head...), line...), data[end:]...)
		return out, true, nil
	}
	return nil, false, fmt.Errorf("%q is not an image policy of %s: use one of %s", policy, FileName, strings.Join(names, ", "))
}

// mappingValue is the value of key in the mapping m, or nil. Unlike
// nodeAt it does not follow an alias: an edit must land on the bytes of
// this key, never on an anchor that other keys share.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// offset is the byte offset of line and column (1-based, the column in
// characters, as the YAML parser counts them).
func offset(data []byte, line, column int) (int, error) {
	pos := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			return 0, fmt.Errorf("%s has no line %d", FileName, line)
		}
		pos += i + 1
	}
	for c := 1; c < column; c++ {
		if pos >= len(data) || data[pos] == '\n' {
			return 0, fmt.Errorf("%s has no column %d on line %d", FileName, column, line)
		}
		_, size := utf8.DecodeRune(data[pos:])
		pos += size
	}
	return pos, nil
}
