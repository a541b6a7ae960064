package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

// start serves a Server on a real loopback listener and returns its base URL.
func start(t *testing.T) (string, *bool) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mqttrr", Name: "test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	healthy := true
	s := New(reg, nil)
	s.Health("/health", func() (bool, string) { return healthy, "2 of 3 connections up" })
	s.Stats("worker", func() any { return map[string]int{"processed": 7} })
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String(), &healthy
}

func get(t *testing.T, method, u string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestEndpoints(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { // runs after the server's cleanup
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	base, healthy := start(t)
	cases := []struct {
		name, method, path string
		code               int
		body               string
	}{
		{"metrics", "GET", "/metrics", 200, "mqttrr_test_total 3"},
		{"health ok", "GET", "/health", 200, "ok"},
		{"stats json", "GET", "/stats", 200, `"processed": 7`},
		{"debug vars: the same snapshot under its name", "GET", "/debug/vars", 200, `"worker": {
    "processed": 7
  }`},
		{"index", "GET", "/", 200, "/stats"},
		{"head", "HEAD", "/stats", 200, ""},
		{"unknown path", "GET", "/nope", 404, ""},
		{"unknown nested", "GET", "/metrics/x", 404, ""},
		{"post refused", "POST", "/stats", 405, ""},
		{"delete refused", "DELETE", "/metrics", 405, ""},
		{"put on index", "PUT", "/", 405, ""},
		{"odd query", "GET", "/stats?%zz=1&a=%00&" + strings.Repeat("x", 4000), 200, "processed"},
		{"odd query health", "GET", "/health?;;;=&&", 200, "ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := base + c.path
			if strings.Contains(c.path, "%zz") {
				u = base + "/stats?" + url.PathEscape("%zz=1&a=\x00&"+strings.Repeat("x", 4000))
			}
			code, hdr, body := get(t, c.method, u)
			if code != c.code {
				t.Fatalf("%s %s: %d, want %d (%s)", c.method, c.path, code, c.code, body)
			}
			if c.body != "" && !strings.Contains(body, c.body) {
				t.Errorf("body lacks %q: %s", c.body, body)
			}
			if code == 405 && hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("405 without Allow header: %v", hdr)
			}
		})
	}
	code, hdr, body := get(t, "GET", base+"/stats")
	var v map[string]int
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("stats: %d %v %s", code, hdr, body)
	}
	*healthy = false
	if code, _, body := get(t, "GET", base+"/health"); code != 503 || !strings.Contains(body, "2 of 3") {
		t.Errorf("unhealthy: %d %s", code, body)
	}
}

func TestListenTaken(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(l.Addr().String()); err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("second listen on a taken address: %v", err)
	}
}

// TestJSONOr404: the document once it exists, 404 with the reason before.
func TestJSONOr404(t *testing.T) {
	s := New(prometheus.NewRegistry(), nil)
	var ready bool
	s.JSONOr404("/report", func() (any, error) {
		if !ready {
			return nil, errNotYet
		}
		return map[string]int{"sent": 3}, nil
	})
	rec := func() (int, string, http.Header) {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/report", nil))
		return w.Code, w.Body.String(), w.Header()
	}
	if code, body, hdr := rec(); code != 404 || !strings.Contains(body, `"error": "not yet"`) || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("before: %d %v %s", code, hdr, body)
	}
	ready = true
	if code, body, _ := rec(); code != 200 || !strings.Contains(body, `"sent": 3`) {
		t.Errorf("after: %d %s", code, body)
	}
}

var errNotYet = errors.New("not yet")
