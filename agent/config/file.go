package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// fileInfo remembers where each key path of the file is, so that a problem found
// after decoding can still point at its line, and so defaults fill only what the file
// left out.
type fileInfo struct {
	lines map[string]int
}

func (f *fileInfo) has(path string) bool {
	_, ok := f.lines[path]
	return ok
}

// line returns the line of path, or of its nearest ancestor present in the file.
func (f *fileInfo) line(path string) int {
	for path != "" {
		if n, ok := f.lines[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseFile reads YAML into the plain map viper merges, keeping only keys Config
// knows with values of the right type: every other key and value becomes an error
// with its path and line, so a typo is never silently ignored.
func parseFile(data []byte) (map[string]any, *fileInfo, Errors) {
	info := &fileInfo{lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		fe := FieldError{Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Message = "invalid YAML: " + msg[len(m[0]):]
		}
		return nil, info, Errors{fe}
	}
	if len(doc.Content) == 0 {
		return map[string]any{}, info, nil
	}
	w := walker{info: info}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, info, Errors{{Message: "the file must be a mapping of sections: node, docker, cluster, admin, log, listeners, groups, static", Line: root.Line}}
	}
	out, _ := w.walk(root, reflect.TypeOf(Config{}), "")
	m, _ := out.(map[string]any)
	return m, info, w.errs
}

type walker struct {
	info *fileInfo
	errs Errors
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...), Line: n.Line})
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// walk converts node to the value viper and mapstructure expect for type t. ok is
// false when the node is absent (null) or wrong, so the key is left to its default.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) (value any, ok bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, false
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be a duration like 30s or 5m, or a whole number of seconds, not a %s", kindName(n))
			return nil, false
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			w.fail(n, path, "%v", err)
			return nil, false
		}
		return d, true
	case t == stringListType:
		return w.stringList(n, path)
	}
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			if strings.HasSuffix(path, ".forward") && n.Kind == yaml.SequenceNode {
				// mapping stores the list under forward-groups.
				return w.walk(n, reflect.TypeOf([]WeightedForward{}), path)
			} else {
				w.fail(n, path, "must be a single value, not a %s", kindName(n))
			}
			return nil, false
		}
		return n.Value, true
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			w.fail(n, path, "must be a whole number, not %s", describe(n))
			return nil, false
		}
		return i, true
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			w.fail(n, path, "must be true or false, not %s", describe(n))
			return nil, false
		}
		return b, true
	case reflect.Pointer:
		return w.walk(n, t.Elem(), path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "must be a list, not a %s", kindName(n))
			return nil, false
		}
		list := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.info.lines[p] = item.Line
			// A wrong element still takes its place so that indexes in later
			// messages match the file.
			v, _ := w.walk(item, t.Elem(), p)
			if v == nil {
				v = map[string]any{}
			}
			list = append(list, v)
		}
		return list, true
	case reflect.Map:
		if t == reflect.TypeOf(HeaderConditions{}) {
			return w.mapping(n, path, func(key string, keyNode *yaml.Node) (reflect.Type, bool) {
				if !headerName.MatchString(key) {
					w.fail(keyNode, join(path, key), "header name %q: use letters, digits and - (no wildcard; names match case-insensitively)", key)
					return nil, false
				}
				return t.Elem(), true
			})
		}
		return w.mapping(n, path, func(key string, keyNode *yaml.Node) (reflect.Type, bool) {
			if err := checkName(key); err != nil {
				w.fail(keyNode, join(path, key), "%v", err)
				return nil, false
			}
			return t.Elem(), true
		})
	case reflect.Struct:
		fields := structFields(t)
		return w.mapping(n, path, func(key string, keyNode *yaml.Node) (reflect.Type, bool) {
			if ft, ok := fields[key]; ok {
				return ft, true
			}
			msg := "unknown key"
			if near := closest(key, fields); near != "" {
				msg += "; did you mean " + near + "?"
			}
			w.fail(keyNode, join(path, key), "%s", msg)
			return nil, false
		})
	}
	panic(fmt.Sprintf("config: no YAML rule for %s", t))
}

// mapping walks a YAML mapping; typeOf says which type a key's value has, or
// reports the key as wrong and returns false.
func (w *walker) mapping(n *yaml.Node, path string, typeOf func(string, *yaml.Node) (reflect.Type, bool)) (any, bool) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping of keys to values, not %s", describe(n))
		return nil, false
	}
	out := map[string]any{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode, valueNode := resolve(n.Content[i]), n.Content[i+1]
		key := keyNode.Value
		p := join(path, key)
		if first, dup := seen[key]; dup {
			w.fail(keyNode, p, "set twice; the first is on line %d", first)
			continue
		}
		seen[key] = keyNode.Line
		t, ok := typeOf(key, keyNode)
		if !ok {
			continue
		}
		w.info.lines[p] = keyNode.Line
		if v, ok := w.walk(valueNode, t, p); ok {
			if _, list := v.([]any); list && key == "forward" {
				key = "forward-groups" // a weighted forward
			}
			out[key] = v
		}
	}
	return out, true
}

func (w *walker) stringList(n *yaml.Node, path string) (any, bool) {
	if n.Kind == yaml.ScalarNode {
		return []any{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(n, path, "must be a value or a list of values, not a %s", kindName(n))
		return nil, false
	}
	list := make([]any, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		w.info.lines[p] = item.Line
		if item.Kind != yaml.ScalarNode || isNull(item) {
			w.fail(item, p, "must be a single value, not %s", describe(item))
			continue
		}
		list = append(list, item.Value)
	}
	return list, true
}

// structFields maps each key of a struct (by its mapstructure tag, with squashed
// embedded structs flattened) to its type.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("mapstructure")
		if tag == ",squash" {
			for k, v := range structFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		fields[tag] = f.Type
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}

// closest suggests the known key a typo most likely meant: edit distance at most 2,
// or a third of the key's length for longer keys.
func closest(key string, fields map[string]reflect.Type) string {
	best, bestDistance := "", max(2, len(key)/3)+1
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if d := editDistance(key, name); d < bestDistance {
			best, bestDistance = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
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

// locate gives each problem the line of its key when the value came from the file,
// not from env or a flag.
func (errs Errors) locate(file *fileInfo, flags *pflag.FlagSet) {
	if file == nil {
		return
	}
	for i := range errs {
		e := &errs[i]
		if e.Line != 0 || e.Path == "" || overridden(e.Path, flags) {
			continue
		}
		e.Line = file.line(e.Path)
	}
}

func overridden(path string, flags *pflag.FlagSet) bool {
	for _, s := range overridable {
		if s.path != path {
			continue
		}
		// viper, like this check, treats an empty variable as unset.
		if os.Getenv(EnvName(path)) != "" {
			return true
		}
		return flags != nil && flags.Lookup(path) != nil && flags.Changed(path)
	}
	return false
}

// sort orders problems by line, then path, so the output reads like the file.
func (errs Errors) sort() {
	slices.SortStableFunc(errs, func(a, b FieldError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Path, b.Path)
	})
}
