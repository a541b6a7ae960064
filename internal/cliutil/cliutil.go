// Package cliutil holds what the main functions of both binaries and the
// helper commands share: the exit status convention, LOG_LEVEL parsing and
// logger construction, signal handling with a second signal exiting at once,
// and recognising a request for help (-h).
package cliutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses of both binaries.
const (
	ExitOK       = 0
	ExitError    = 1 // runtime failure (e.g. broker unreachable)
	ExitConfig   = 2 // invalid configuration
	ExitSLO      = 3 // loadgen: the run missed its SLO
	ExitSignaled = 130
)

// ParseLevel parses a LOG_LEVEL value with slog's own parser: debug, info,
// warn or error in any case, optionally with an offset ("warn+2").
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// Logger returns a text slog logger on w at level (ParseLevel; a value it
// refuses means info: configurations validate LOG_LEVEL before this).
func Logger(w io.Writer, level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// SignalContext returns a context cancelled by the first SIGINT or SIGTERM;
// a second one calls exit(ExitSignaled) at once. stop releases the handler.
func SignalContext(parent context.Context, log *slog.Logger, exit func(int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			log.Info("signal received: stopping gracefully (send again to exit at once)", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			fmt.Fprintf(os.Stderr, "second %s: exiting now\n", s)
			exit(ExitSignaled)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// WantsHelp reports whether args ask for the usage text.
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			return true
		}
	}
	return false
}

// WantsVersion reports whether args ask for the version (--version,
// -version, -v or version as the first argument).
func WantsVersion(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "-v", "version":
		return true
	}
	return false
}
