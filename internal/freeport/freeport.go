// Package freeport owns how this module finds a free TCP port: a loopback
// address for a server that another process binds later (a child binary's
// HTTP port, a Mosquitto listener), for helper commands and tests alike
// (tests reach it through brokertest.FreeAddr).
package freeport

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

// The ports handed out: 300 blocks of 40 in 20000..31999, below the
// kernel's ephemeral range (32768 and up on Linux).
const (
	base   = 20000
	blocks = 300
	size   = 40
)

// Loopback returns "127.0.0.1:port" with a port that was free a moment ago.
// The port is bound only later, by another process, so it must not be one
// another process is likely to take meanwhile: not from the ephemeral range
// (where every 127.0.0.1:0 bind and outgoing connection lands), and not from
// another process's hand-outs: each process hands out the ports of its own
// block of 40, chosen by its pid, in turn.
func Loopback() (string, error) {
	first := base + os.Getpid()%blocks*size
	for range size {
		port := first + int(next.Add(1)%size)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			addr := l.Addr().String()
			_ = l.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free port in 127.0.0.1:%d..%d", first, first+size-1)
}

// next is the next offset in this process's block.
var next atomic.Int64
