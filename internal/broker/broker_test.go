package broker

import (
	"net"
	"sync"
	"testing"
	"time"
)

// connectPacket is an MQTT 3.1.1 CONNECT with client id "same" (every
// connection takes over the previous one's session: Clients.Delete).
var connectPacket = []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 4, 's', 'a', 'm', 'e'}

// TestCloseWhileClientsAttach closes the broker while clients keep
// connecting with one client id. mochi's own listener close took the clients'
// read lock twice, and a takeover waiting for the write lock between the two
// hung Close forever; the watchdog turns such a hang into a failure.
func TestCloseWhileClientsAttach(t *testing.T) {
	for i := range 30 {
		b, err := Start(Options{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.Dial("tcp", b.Addr())
					if err != nil {
						continue // closed: keep trying until told to stop
					}
					_, _ = c.Write(connectPacket)
					buf := make([]byte, 4)
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					_, _ = c.Read(buf) // CONNACK, or the close
					_ = c.Close()
				}
			})
		}
		for b.srv.Clients.Len() == 0 {
			time.Sleep(time.Millisecond)
		}
		closed := make(chan struct{})
		go func() { _ = b.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(60 * time.Second):
			t.Fatalf("iteration %d: Close did not return (deadlock in the listener's client close)", i)
		}
		close(stop)
		wg.Wait()
	}
}

func TestStartRefusesATakenAddress(t *testing.T) {
	b, err := Start(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Start(Options{Addr: b.Addr()}); err == nil {
		t.Fatalf("a second broker on %s started", b.Addr())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
