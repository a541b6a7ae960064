package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// setting is one field of config.Config as a report's config JSON carries
// it: its environment variable and its Go type (to read a JSON value,
// missing or null meaning the zero value, as omitempty writes it).
type setting struct {
	env string
	typ reflect.Type
}

// settings maps the JSON names of config.Config's fields to their
// environment variables and types, read from the struct tags (json,
// envconfig), embedded structs included.
var settings = sync.OnceValue(func() map[string]setting {
	m := map[string]setting{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for f := range t.Fields() {
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if env := f.Tag.Get("envconfig"); name != "" && name != "-" && env != "" {
				m[name] = setting{env: env, typ: f.Type}
			}
		}
	}
	walk(reflect.TypeFor[config.Config]())
	return m
})

// SettingEnv returns the environment variable of the configuration's JSON
// field name (virtual_clients: VIRTUAL_CLIENTS); the name in upper case
// when config.Config has no such field.
func SettingEnv(name string) string {
	if s, ok := settings()[name]; ok {
		return s.env
	}
	return strings.ToUpper(name)
}

// settingValue reads the setting name from a report's config object and
// formats it for a reader: durations as 1m30s, strings quoted, a missing or
// null value as the zero value of the field (omitempty leaves zeros out).
// A value that does not decode into the field's type is shown as its JSON.
func settingValue(cfg map[string]json.RawMessage, name string) string {
	raw, ok := cfg[name]
	s, known := settings()[name]
	if !known {
		if !ok {
			return "null"
		}
		return string(raw)
	}
	v := reflect.New(s.typ)
	if ok {
		if err := json.Unmarshal(raw, v.Interface()); err != nil {
			return string(raw)
		}
	}
	switch x := v.Elem().Interface().(type) {
	case time.Duration:
		return x.String()
	case string:
		return fmt.Sprintf("%q", x)
	default:
		return fmt.Sprint(x)
	}
}
