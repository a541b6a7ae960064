package mqttconn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unsafe"
)

// bufConn wraps a broker connection for throughput on small packets:
//
//   - reads go through a bufio.Reader, so paho's byte-by-byte header reads
//     cost one syscall per burst of packets instead of about three per packet;
//   - writes are coalesced: Write appends to a pending buffer and a flusher
//     goroutine writes everything that accumulated in one syscall, optionally
//     after waiting `linger` for more. Batching therefore delays a packet by
//     at most linger plus one write, and that delay shows in measured latency.
//
// Every paho packet is written with a single Write call, so frames appended by
// AppendPublish between paho's writes never interleave with them.
type bufConn struct {
	net.Conn
	r *bufio.Reader

	// onPublish, when set, receives inbound QoS 0 PUBLISH packets straight
	// from the read buffer: they are parsed here and never reach paho (no
	// allocation, no goroutine hand-off per message). Other packets are
	// passed to paho unchanged. topic and payload alias a buffer reused for
	// the next packet.
	onPublish func(topic string, payload []byte)
	pkt       []byte // body of the packet being parsed
	stage     []byte // a packet for paho, not yet returned by Read
	stageOff  int

	linger       time.Duration
	writeTimeout time.Duration
	limit        int // pending bytes beyond which AppendPublish refuses

	wmu     sync.Mutex // held while writing to the socket (flusher or flushSync)
	mu      sync.Mutex
	pending []byte
	spare   []byte
	err     error // sticky write error
	closed  bool

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// errClosed is returned by writes after Close.
var errClosed = errors.New("connection closed")

func newBufConn(c net.Conn, readBuf int, linger, writeTimeout time.Duration, limit int) *bufConn {
	b := &bufConn{
		Conn:         c,
		r:            bufio.NewReaderSize(c, readBuf),
		linger:       linger,
		writeTimeout: writeTimeout,
		limit:        limit,
		pending:      make([]byte, 0, 16<<10),
		spare:        make([]byte, 0, 16<<10),
		kick:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	b.wg.Add(1)
	go b.flusher()
	return b
}

// Read returns the byte stream to paho. With onPublish set, it parses the
// stream packet by packet, hands QoS 0 PUBLISH packets to onPublish and
// returns only the other packets to paho.
func (b *bufConn) Read(p []byte) (int, error) {
	if b.onPublish == nil {
		return b.r.Read(p)
	}
	for {
		if b.stageOff < len(b.stage) {
			n := copy(p, b.stage[b.stageOff:])
			b.stageOff += n
			return n, nil
		}
		hdr, err := b.r.ReadByte()
		if err != nil {
			return 0, err
		}
		rl, enc, err := readRemainingLength(b.r)
		if err != nil {
			return 0, err
		}
		if rl > maxInboundPacket {
			return 0, fmt.Errorf("%w: inbound packet of %d bytes exceeds %d", errMalformedPacket, rl, maxInboundPacket)
		}
		if hdr>>4 == 3 && hdr&0x06 == 0 { // PUBLISH, QoS 0 (DUP and RETAIN ignored)
			if cap(b.pkt) < rl {
				b.pkt = make([]byte, rl)
			}
			body := b.pkt[:rl]
			if _, err := io.ReadFull(b.r, body); err != nil {
				return 0, err
			}
			if rl < 2 {
				return 0, errMalformedPacket
			}
			tl := int(body[0])<<8 | int(body[1])
			if 2+tl > rl {
				return 0, errMalformedPacket
			}
			b.onPublish(unsafe.String(unsafe.SliceData(body[2:]), tl), body[2+tl:])
			if cap(b.pkt) > 1<<20 {
				b.pkt = nil // do not keep a huge buffer after one oversized message
			}
			continue
		}
		b.stage = append(append(append(b.stage[:0], hdr), enc...), make([]byte, rl)...)
		if _, err := io.ReadFull(b.r, b.stage[len(b.stage)-rl:]); err != nil {
			return 0, err
		}
		b.stageOff = 0
	}
}

var errMalformedPacket = errors.New("malformed MQTT packet from broker")

// maxInboundPacket bounds what one inbound packet may make us allocate
// (bytes); a larger one closes the connection, which then reconnects.
const maxInboundPacket = 16 << 20

// readRemainingLength reads the MQTT variable-length remaining length and
// returns it with its encoding.
func readRemainingLength(r *bufio.Reader) (int, []byte, error) {
	var enc [4]byte
	n, mult := 0, 1
	for i := range 4 {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		enc[i] = d
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			return n, enc[:i+1], nil
		}
		mult *= 128
	}
	return 0, nil, errMalformedPacket
}

// Write queues p (one whole MQTT packet from paho) for the flusher. Packets
// of paho itself (CONNECT, SUBSCRIBE, PINGREQ, acks) are never refused for
// size: they are few and small.
func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if err := b.stateErr(); err != nil {
		b.mu.Unlock()
		return 0, err
	}
	wasEmpty := len(b.pending) == 0
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	if wasEmpty {
		b.signal()
	}
	return len(p), nil
}

func (b *bufConn) stateErr() error {
	if b.err != nil {
		return b.err
	}
	if b.closed {
		return errClosed
	}
	return nil
}

// appendPublish appends a QoS 0 PUBLISH frame for topic and payload without
// allocating (once the buffer has grown). It refuses with ErrBackpressure when
// more than limit bytes are pending, which bounds memory during a stall.
func (b *bufConn) appendPublish(topic string, payload []byte, kick bool) error {
	b.mu.Lock()
	if err := b.stateErr(); err != nil {
		b.mu.Unlock()
		return err
	}
	if len(b.pending) > b.limit {
		b.mu.Unlock()
		return ErrBackpressure
	}
	wasEmpty := len(b.pending) == 0
	b.pending = appendPublishFrame(b.pending, topic, payload)
	b.mu.Unlock()
	if wasEmpty && kick {
		b.signal()
	}
	return nil
}

func (b *bufConn) signal() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// appendPublishFrame appends an MQTT 3.1.1 PUBLISH packet, QoS 0, no retain:
// fixed header 0x30, remaining length (variable-length integer), topic
// (2-byte length + bytes), payload.
func appendPublishFrame(dst []byte, topic string, payload []byte) []byte {
	rl := 2 + len(topic) + len(payload)
	dst = append(dst, 0x30)
	for {
		d := byte(rl % 128)
		rl /= 128
		if rl > 0 {
			d |= 0x80
		}
		dst = append(dst, d)
		if rl == 0 {
			break
		}
	}
	dst = append(dst, byte(len(topic)>>8), byte(len(topic)))
	dst = append(dst, topic...)
	return append(dst, payload...)
}

func (b *bufConn) flusher() {
	defer b.wg.Done()
	var t *time.Timer
	for {
		select {
		case <-b.kick:
		case <-b.done:
			return
		}
		if b.linger > 0 {
			if t == nil {
				t = time.NewTimer(b.linger)
			} else {
				t.Reset(b.linger)
			}
			select {
			case <-t.C:
			case <-b.done:
				return
			}
		}
		b.wmu.Lock()
		err := b.writePending()
		b.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// writePending writes everything pending, in as few writes as it takes for
// the buffer to stay empty. The caller holds wmu. On a write error it makes
// the error sticky and closes the socket (so paho's reader fails and the
// client reconnects).
func (b *bufConn) writePending() error {
	for {
		b.mu.Lock()
		out := b.pending
		b.pending, b.spare = b.spare[:0], out[:0] // never leave pending and spare sharing an array
		b.mu.Unlock()
		if len(out) == 0 {
			return nil
		}
		if b.writeTimeout > 0 {
			_ = b.Conn.SetWriteDeadline(time.Now().Add(b.writeTimeout))
		}
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		b.spare = out[:0]
		if err != nil && b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
		if err != nil {
			_ = b.Conn.Close()
			return err
		}
	}
}

// flushSync writes what is pending from the caller's goroutine, saving the
// flusher's wake-up; if the flusher is writing at the moment, it is woken
// instead (it will write what was added).
func (b *bufConn) flushSync() {
	if !b.wmu.TryLock() {
		b.signal()
		return
	}
	b.mu.Lock()
	closed := b.closed || b.err != nil
	b.mu.Unlock()
	if !closed {
		_ = b.writePending()
	}
	b.wmu.Unlock()
}

// Close stops the flusher after it wrote what was pending (bounded by the
// write timeout) and closes the connection. It is idempotent.
func (b *bufConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	out := b.pending
	b.pending = nil
	b.mu.Unlock()
	close(b.done)
	b.wg.Wait()
	b.wmu.Lock() // no flushSync is writing
	defer b.wmu.Unlock()
	if len(out) > 0 && b.err == nil {
		_ = b.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = b.Conn.Write(out)
	}
	return b.Conn.Close()
}
