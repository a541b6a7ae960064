//go:build !linux

package sockio

import "net"

// rawIO is the portable stand-in for the raw system calls of
// rawio_linux.go: reads go through net.Conn, and Flush makes no write
// attempt on the caller's goroutine (nonBlocking is false): the flusher makes
// every write, as over TLS on Linux.
type rawIO struct{}

func (*rawIO) init(net.Conn) {}

func (*rawIO) nonBlocking() bool { return false }

func (*rawIO) read(c net.Conn, p []byte) (int, error) { return c.Read(p) }

// tryWrite is never called (nonBlocking is false); it reports that the
// socket took nothing.
func (*rawIO) tryWrite([]byte) (int, error) { return 0, nil }
