package mqttconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/sockio"
)

// session is the transport of one MQTT session, and the net.Conn the client
// library reads and writes: the socket (sockio.Conn: read buffer, coalesced
// writes, liveness) plus the read demultiplexer and the QoS 0 fast path. A
// reconnect makes a new session.
//
// Demultiplexing. Read parses the inbound stream packet by packet. With
// onPublish set, it hands QoS 0 PUBLISH packets to onPublish straight from
// the read buffer: the client library never sees them (no allocation, no
// goroutine hand-off per message). A PUBLISH larger than the frame limit
// (Options.MaxInboundFrame) is skipped unread and reported to onOversized
// (skip). Every other packet goes to the client library unchanged, straight
// from the read buffer into the library's own buffer.
//
// Inbound memory. A session holds its read buffer and at most one frame of
// up to the frame limit (a QoS 0 PUBLISH larger than the read buffer, copied
// out to be parsed, then released when above 1 MiB); frames for the client
// library are not copied here (the library reads them into its own
// buffers, one message at a time per connection being delivered).
//
// Fast path. publish appends a QoS 0 PUBLISH packet to the socket's write
// buffer. The client library writes each of its packets with one Write call
// (paho.mqtt.golang), or several under the socket's Lock (paho.golang, whose
// sessions set sockio.Options.PacketLock), so appended packets never land
// inside one of its packets.
type session struct {
	*sockio.Conn
	v5 bool // the session speaks MQTT 5: PUBLISH packets carry properties
	// ready: the pool has subscribed on this session. Publishes are accepted
	// only then, and while the socket is not Dead.
	ready atomic.Bool
	// caps is what the broker announced when this session connected, set
	// by the member's connect handler.
	caps atomic.Pointer[Capabilities]

	// onPublish, when set, receives inbound QoS 0 PUBLISH packets; the
	// message aliases the read buffer and is valid during the call.
	onPublish func(m *Message)
	msg       Message // the message being delivered
	// onUnsent, when set, receives every PUBLISH packet the socket discarded
	// unwritten.
	onUnsent func(m *Message)
	// onOversized, when set, is told of every PUBLISH skipped for being
	// larger than maxFrame.
	onOversized func(o Oversized)
	maxFrame    int    // the frame limit (Options.MaxInboundFrame)
	pkt         []byte // body of a QoS 0 packet larger than the read buffer
	passing     int    // bytes of the current packet still to pass to the client library
}

// newSession wraps nc, a socket connected to the broker, for a session of
// the pool's options o: onPublish receives inbound QoS 0 messages (nil: the
// client library receives them), onUnsent the messages accepted but never
// written (nil: none are reported).
func newSession(nc net.Conn, o *Options, onPublish, onUnsent func(*Message)) *session {
	s := &session{v5: o.ProtocolVersion == 5, onPublish: onPublish, onUnsent: onUnsent, maxFrame: o.MaxInboundFrame}
	if s.maxFrame <= 0 {
		s.maxFrame = DefaultMaxInboundFrame
	}
	so := sockio.Options{
		ReadBufferBytes: o.ReadBufferBytes,
		Linger:          o.Linger,
		WriteTimeout:    o.WriteTimeout,
		MaxPendingBytes: o.MaxPendingBytes,
		PacketLock:      s.v5,
	}
	if onUnsent != nil {
		so.FrameLen, so.OnUnsent = mqttpkt.FrameLen, s.reportUnsent
	}
	s.Conn = sockio.New(nc, so)
	return s
}

// Read returns the inbound byte stream to the client library, less the QoS 0
// PUBLISH packets it hands to onPublish and the PUBLISH packets it skips for
// their size.
//
// Any error marks the session dead. When a write failed, the socket was
// closed so that this read fails and the client reconnects; the read then
// reports the write's error. paho.mqtt.golang ignores "use of closed network
// connection" (it takes it for its own Disconnect), so passing that error on
// would leave the session dead, without a connection-lost report, until a
// keepalive ping timed out (and the write's error is formatted with %s, not
// wrapped, for the same reason).
func (s *session) Read(p []byte) (int, error) {
	n, err := s.demux(p)
	if err != nil {
		s.MarkDead()
		if errors.Is(err, net.ErrClosed) {
			if werr := s.Err(); werr != nil {
				err = fmt.Errorf("mqtt connection failed on write: %s", werr.Error())
			}
		}
	}
	return n, err
}

// demux is Read: it parses each packet's fixed header, then delivers (QoS
// 0 PUBLISH with onPublish), skips (a PUBLISH above maxFrame) or passes the
// packet on.
func (s *session) demux(p []byte) (int, error) {
	r := s.Reader()
	for {
		if s.passing > 0 {
			n, err := r.Read(p[:min(len(p), s.passing)])
			s.passing -= n
			return n, err
		}
		hdr, err := r.Peek(2) // the shortest packet: first byte and a one-byte remaining length
		if err != nil {
			return 0, err
		}
		rl, hl, err := mqttpkt.Header(hdr)
		for err == mqttpkt.ErrShort { // the remaining length continues
			if hdr, err = r.Peek(len(hdr) + 1); err != nil {
				return 0, err
			}
			rl, hl, err = mqttpkt.Header(hdr)
		}
		if err != nil {
			return 0, errMalformedPacket
		}
		first := hdr[0]
		publish := mqttpkt.Type(first) == mqttpkt.PUBLISH
		switch {
		case hl+rl > s.maxFrame && publish:
			if err := s.skip(first, hl, rl); err != nil {
				return 0, err
			}
		case hl+rl > s.maxFrame: // no broker sends other packets this large
			return 0, fmt.Errorf("%w: inbound packet of %d bytes (type %d) exceeds %d", errMalformedPacket, hl+rl, mqttpkt.Type(first), s.maxFrame)
		case publish && mqttpkt.QoS(first) == 0 && s.onPublish != nil: // DUP and RETAIN ignored
			if err := s.deliver(first, hl, rl); err != nil {
				return 0, err
			}
		default:
			s.passing = hl + rl
		}
	}
}

// deliver parses the QoS 0 PUBLISH packet at the head of the read buffer
// (first byte first, header of hl bytes, remaining length rl) and hands it
// to onPublish. A packet that fits the read buffer is parsed where it lies;
// a larger one is copied out first.
func (s *session) deliver(first byte, hl, rl int) error {
	r := s.Reader()
	size := hl + rl
	inPlace := size <= r.Size()
	var body []byte
	if inPlace {
		frame, err := r.Peek(size)
		if err != nil {
			return err
		}
		body = frame[hl:]
	} else {
		_, _ = r.Discard(hl)
		if cap(s.pkt) < rl {
			s.pkt = make([]byte, rl)
		}
		body = s.pkt[:rl]
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
	}
	var err error
	if s.v5 {
		err = mqttpkt.ParsePublish5(first, body, &s.msg)
	} else {
		err = mqttpkt.ParsePublish(first, body, &s.msg)
	}
	if err != nil {
		return errMalformedPacket
	}
	s.onPublish(&s.msg)
	s.msg = Message{}
	if inPlace {
		_, _ = r.Discard(size)
	} else if cap(s.pkt) > 1<<20 {
		s.pkt = nil // do not keep a huge buffer after one oversized message
	}
	return nil
}

// publish appends m, which checkMessage accepted, to the write buffer as a
// QoS 0 PUBLISH packet (MQTT 5 with its properties on a v5 session); kick
// wakes the flusher. It allocates nothing once the buffer has grown.
func (s *session) publish(m *Message, kick bool) error {
	buf, err := s.BeginAppend()
	if err != nil {
		if err == sockio.ErrFull {
			return ErrBackpressure
		}
		return fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	if s.v5 {
		buf = mqttpkt.AppendPublish5(buf, m)
	} else {
		buf = mqttpkt.AppendPublish(buf, m)
	}
	s.EndAppend(buf, kick)
	return nil
}

// reportUnsent hands every PUBLISH packet of frames (whole packets the
// socket discarded unwritten) to onUnsent: its strings copied, its byte
// slices aliasing frames.
func (s *session) reportUnsent(frames []byte) {
	for len(frames) > 0 {
		rl, hl, err := mqttpkt.Header(frames)
		if err != nil || hl+rl > len(frames) {
			return
		}
		pkt := frames[:hl+rl]
		frames = frames[hl+rl:]
		if mqttpkt.Type(pkt[0]) != mqttpkt.PUBLISH {
			continue
		}
		var m Message
		if s.v5 {
			err = mqttpkt.ParsePublish5(pkt[0], pkt[hl:], &m)
		} else {
			err = mqttpkt.ParsePublish(pkt[0], pkt[hl:], &m)
		}
		if err != nil {
			continue
		}
		m.Topic, m.ResponseTopic = strings.Clone(m.Topic), strings.Clone(m.ResponseTopic)
		s.onUnsent(&m)
	}
}
