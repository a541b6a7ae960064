package mqttconn

import (
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/sockio"
)

// DefaultMaxInboundFrame is the default of Options.MaxInboundFrame: the
// largest inbound MQTT packet a connection takes, in bytes (2 MiB; twice the
// largest payload either binary sends, so every request and reply of this
// project fits with its topic and properties).
const DefaultMaxInboundFrame = 2 << 20

// InboundBytesPerConn bounds the inbound buffers of one connection with the
// defaults, in bytes: its read buffer (64 KiB) and one frame of at most
// DefaultMaxInboundFrame (2,162,688 bytes = 2112 KiB). The number of
// connections times it bounds a pool's.
const InboundBytesPerConn = sockio.DefaultReadBufferBytes + DefaultMaxInboundFrame

// Oversized describes an inbound PUBLISH that was skipped unread for being
// larger than Options.MaxInboundFrame.
type Oversized struct {
	// Topic is the message's topic ("" when it is longer than the read
	// buffer, which then never held it whole).
	Topic string
	// Bytes is the size of the whole packet.
	Bytes int
	// QoS of the message; at QoS 1 and 2 it was acknowledged (PUBACK, or
	// PUBREC and then the client library's PUBCOMP), so the session goes on.
	QoS byte
	// Retained: the broker keeps it and delivers it again on every new
	// subscription (after each reconnect); it is skipped each time.
	Retained bool
}

// skip reads the PUBLISH packet at the head of the read buffer (first byte
// first, header of hl bytes, remaining length rl) past without keeping it:
// a hostile or mistaken publisher costs a count, not the connection, and a
// retained one cannot make the connection fail on every reconnect. Only the
// topic (when it fits the read buffer) and the packet identifier are read;
// the rest is discarded through the read buffer, so memory stays at the
// buffer's size whatever the packet's.
//
// Acknowledgement. The client library never sees the packet, so at QoS 1
// and 2 the session answers it itself, with a PUBACK (QoS 1) or a PUBREC
// (QoS 2) of reason "success" (the 4-byte form, the same in MQTT 3.1.1 and
// 5): the application chose to drop the message, which MQTT allows. Without
// it the broker would hold the message in flight for ever and, at its
// inflight limit (Receive Maximum, Mosquitto's max_inflight_messages), stop
// delivering to this connection. The broker then sends a PUBREL for a QoS 2
// message; both client libraries answer a PUBREL they have no record of
// with a PUBCOMP (paho.mqtt.golang always does; paho.golang does for an
// unknown packet identifier), which ends the exchange. Nothing is changed on
// the broker: a retained message stays there until its publisher clears it.
func (s *session) skip(first byte, hl, rl int) error {
	r := s.Reader()
	o := Oversized{Bytes: hl + rl, QoS: mqttpkt.QoS(first), Retained: first&1 == 1}
	if o.QoS > 2 {
		return errMalformedPacket
	}
	if _, err := r.Discard(hl); err != nil {
		return err
	}
	b, err := r.Peek(2)
	if err != nil {
		return err
	}
	tl := int(b[0])<<8 | int(b[1])
	left := rl - 2 - tl
	if o.QoS > 0 {
		left -= 2
	}
	if left < 0 {
		return errMalformedPacket
	}
	if 2+tl <= r.Size() {
		if b, err = r.Peek(2 + tl); err != nil {
			return err
		}
		o.Topic = string(b[2:])
	}
	if _, err := r.Discard(2 + tl); err != nil {
		return err
	}
	if o.QoS > 0 {
		if b, err = r.Peek(2); err != nil {
			return err
		}
		ack := [4]byte{0x40, 2, b[0], b[1]} // PUBACK
		if o.QoS == 2 {
			ack[0] = 0x50 // PUBREC
		}
		if _, err := r.Discard(2); err != nil {
			return err
		}
		if s.v5 { // paho.golang writes a packet in parts under this lock
			s.Lock()
		}
		_, err = s.Conn.Write(ack[:])
		if s.v5 {
			s.Unlock()
		}
		if err != nil {
			return err
		}
	}
	if _, err := r.Discard(left); err != nil {
		return err
	}
	if s.onOversized != nil {
		s.onOversized(o)
	}
	return nil
}

// oversized reports a message skipped for its size to OnOversized (until
// the pool has closed) and warns, at most every 10 s for the pool.
func (c *connBase) oversized(o Oversized) {
	p := c.pool
	p.oversizedLog.Do(func() {
		msg := "inbound message above the frame limit skipped unread and counted; the connection stays up (logged at most every 10 s)"
		if o.Retained {
			msg += "; it is retained: the broker delivers it again on every subscribe until its publisher clears it (an empty retained message to its topic)"
		}
		p.opts.Logger.Warn(msg, "conn", c.idx, "topic", o.Topic, "bytes", o.Bytes, "limit_bytes", p.opts.MaxInboundFrame, "qos", o.QoS, "retained", o.Retained)
	})
	if p.opts.OnOversized == nil {
		return
	}
	c.hmu.RLock()
	if !c.closed {
		p.opts.OnOversized(c.idx, o)
	}
	c.hmu.RUnlock()
}
