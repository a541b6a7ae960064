// Package loadgentest holds what the loadgen's package tests share: a
// resolved configuration of a small run from a few variables, and a logger
// that writes nothing. It is imported by tests only.
package loadgentest

import (
	"io"
	"log/slog"
	"os"
	"reflect"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// Defaults are the variables of a small run (2000 clients every 500 ms over
// 4 connections for 2 s, nothing served, no progress lines) that Resolve
// starts from.
var Defaults = map[string]string{
	"VIRTUAL_CLIENTS": "2000", "CONNECTIONS": "4", "SHARDS": "16",
	"INTERVAL_MS": "500", "DURATION": "2s", "REQUEST_TIMEOUT": "1s", "METRICS_ADDR": "",
	"PROGRESS_INTERVAL": "0s", "INSTANCE_ID": "test",
}

// Resolve loads and resolves the configuration of a run against brokerURL
// from Defaults overridden by env, as the binary does, with every other
// variable unset (SetEnv).
func Resolve(t testing.TB, brokerURL string, env map[string]string) *config.Resolved {
	t.Helper()
	all := map[string]string{"BROKER": brokerURL}
	for k, v := range Defaults {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	SetEnv(t, all)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// QuietLog is a logger that writes nothing.
func QuietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// EnvVars lists every variable of config.Config (the embedded security
// settings included), read from the struct tags so that new variables are
// covered.
func EnvVars() []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if k := f.Tag.Get("envconfig"); k != "" {
				out = append(out, k)
			}
		}
	}
	walk(reflect.TypeFor[config.Config]())
	return out
}

// SetEnv unsets every variable of config.Config for the test's duration,
// then sets env (t.Setenv restores them all at the end).
func SetEnv(t testing.TB, env map[string]string) {
	t.Helper()
	for _, k := range EnvVars() {
		t.Setenv(k, "") // registers the restore
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}
