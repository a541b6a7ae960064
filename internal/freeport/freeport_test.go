package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestLoopbackIsBindableDistinctAndInTheBlock: consecutive addresses differ,
// each can be bound, and each lies in this process's block below the
// ephemeral range.
func TestLoopbackIsBindableDistinctAndInTheBlock(t *testing.T) {
	seen := map[string]bool{}
	for range 5 {
		a, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" || port < base || port >= base+blocks*size {
			t.Errorf("%s: not a loopback port in %d..%d", a, base, base+blocks*size-1)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("bind %s: %v", a, err)
		}
		_ = l.Close()
	}
}
