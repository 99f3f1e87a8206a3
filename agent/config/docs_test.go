package config

import (
	"reflect"
	"regexp"
	"testing"

	"github.com/berth-lb/berth/internal/doccheck"
)

// TestEveryKeyIsDocumented fails for a config key that docs/config.md does
// not name: every key the file accepts is documented where a user looks.
func TestEveryKeyIsDocumented(t *testing.T) {
	keys := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
			return
		}
		for key, ft := range structFields(ty) {
			keys[key] = true
			walk(ft)
		}
	}
	walk(reflect.TypeOf(Config{}))
	// forward-groups is how the loader passes a list under forward on; the
	// file spells it forward: [{group: a, weight: 90}].
	delete(keys, "forward-groups")
	// In a table (`key`, `parent.key`) or in a YAML example (key: value).
	missing := doccheck.Unnamed(t, "../../docs/config.md", keys, 50, func(key string) string {
		return "(^|[^a-z-])" + regexp.QuoteMeta(key) + "(`|: )"
	})
	if len(missing) > 0 {
		t.Errorf("docs/config.md does not name the keys %v", missing)
	}
}
