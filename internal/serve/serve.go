// Package serve owns the HTTP side of both binaries: /metrics from a
// Prometheus registry, health endpoints, the live stats at /stats and
// /debug/vars (Stats) and other JSON endpoints, with GET-only handlers, 404
// for unknown paths, and a graceful shutdown tied to a context. What the
// metrics are is package metrics' concern.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is an HTTP server with a fixed set of GET endpoints.
type Server struct {
	mux   *http.ServeMux
	log   *slog.Logger
	paths []string
}

// New returns a server exposing /metrics from g.
func New(g prometheus.Gatherer, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{mux: http.NewServeMux(), log: log}
	s.mux.Handle("/metrics", getOnly(promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})))
	index := getOnly(http.HandlerFunc(s.index))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		index.ServeHTTP(w, r)
	})
	return s
}

// index lists the endpoints.
func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "endpoints: /metrics", s.paths)
}

// Health adds /path answering 200 "ok" when ok() is true, else 503 with the
// reason ok returns.
func (s *Server) Health(path string, ok func() (bool, string)) {
	s.paths = append(s.paths, path)
	s.mux.Handle(path, getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		good, why := ok()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !good {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, why)
			return
		}
		fmt.Fprintln(w, "ok")
	})))
}

// JSON adds /path answering the JSON encoding of snapshot(), readable from
// any origin (for the web dashboard).
func (s *Server) JSON(path string, snapshot func() any) {
	s.JSONOr404(path, func() (any, error) { return snapshot(), nil })
}

// Stats serves one live-stats snapshot at both of its URLs, the same JSON
// built once per request: /stats answers snapshot() itself and /debug/vars
// answers {name: snapshot()} (the expvar shape the web dashboard reads).
// Both binaries call it, so the two URLs can never disagree.
func (s *Server) Stats(name string, snapshot func() any) {
	s.JSON("/stats", snapshot)
	s.JSON("/debug/vars", func() any { return map[string]any{name: snapshot()} })
}

// JSONOr404 adds /path answering the JSON encoding of what snapshot returns,
// or, while it returns an error, 404 with {"error": "..."} (e.g. a final
// report that does not exist yet). Readable from any origin, like JSON.
func (s *Server) JSONOr404(path string, snapshot func() (any, error)) {
	s.paths = append(s.paths, path)
	s.mux.Handle(path, getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		v, err := snapshot()
		if err != nil {
			w.WriteHeader(http.StatusNotFound)
			v = map[string]string{"error": err.Error()}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})))
}

// Handler returns the server's handler (for tests).
func (s *Server) Handler() http.Handler { return s.mux }

func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func methodNotAllowed(w http.ResponseWriter) {
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// Listen binds addr (":0" or "127.0.0.1:0" for a free port). It fails when
// the address is taken.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen on %s: %w", addr, err)
	}
	return l, nil
}

// Serve serves on l until ctx ends, then shuts down within 5 s.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
