package sockio

import "time"

// Write queues p, one whole packet of the client library, for the flusher.
// It never refuses for size: the client library's own packets (CONNECT,
// SUBSCRIBE, PINGREQ, acknowledgements) are few and small. It fails with
// the sticky write error, or ErrClosed once Close has begun.
func (s *Conn) Write(p []byte) (int, error) {
	s.mu.Lock()
	if err := s.stateErr(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	wasEmpty := len(s.pending) == 0
	s.pending = append(s.pending, p...)
	s.mu.Unlock()
	if wasEmpty {
		s.signal()
	}
	return len(p), nil
}

func (s *Conn) stateErr() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return ErrClosed
	}
	return nil
}

// BeginAppend returns the pending buffer for the caller to append whole
// frames to, and holds the connection's write lock until EndAppend, which
// the caller must call with the grown buffer. It allocates nothing once the
// buffer has grown. It fails, and holds nothing, with the sticky write
// error, with ErrClosed once Close has begun, or with ErrFull when more than
// Options.MaxPendingBytes are pending (which bounds memory during a stall).
func (s *Conn) BeginAppend() ([]byte, error) {
	if s.packetLock {
		s.pmu.Lock() // never between the parts of a packet of the client library
	}
	s.mu.Lock()
	err := s.stateErr()
	if err == nil && len(s.pending)+len(s.carry) > s.limit {
		err = ErrFull
	}
	if err != nil {
		s.mu.Unlock()
		if s.packetLock {
			s.pmu.Unlock()
		}
		return nil, err
	}
	s.appendFrom = len(s.pending)
	return s.pending, nil
}

// EndAppend stores buf, the buffer BeginAppend returned with frames
// appended, and releases the write lock. With kick, it wakes the flusher if
// the buffer was empty before; without, the frames wait for the next Flush
// (or a later kick).
func (s *Conn) EndAppend(buf []byte, kick bool) {
	s.pending = buf
	wasEmpty := s.appendFrom == 0
	s.mu.Unlock()
	if s.packetLock {
		s.pmu.Unlock()
	}
	if wasEmpty && kick {
		s.signal()
	}
}

// Lock and Unlock make the client library's writes of one packet (paho.golang
// writes a packet in several Write calls, holding the writer's lock when it
// is a sync.Locker) atomic against appended frames (Options.PacketLock).
func (s *Conn) Lock()   { s.pmu.Lock() }
func (s *Conn) Unlock() { s.pmu.Unlock() }

// signal wakes the flusher.
func (s *Conn) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush writes what is pending from the caller's goroutine with one
// non-blocking attempt, saving the flusher's wake-up in the common case where
// the socket takes it all. What the socket does not take, or what waits
// behind a carry or a busy flusher, is left to the flusher: Flush never
// blocks on the network. Without raw access to the socket (TLS, or not
// Linux) it only wakes the flusher.
func (s *Conn) Flush() {
	if !s.raw.nonBlocking() || !s.wmu.TryLock() {
		s.signal()
		return
	}
	s.mu.Lock()
	if s.stateErr() != nil || len(s.pending) == 0 || len(s.carry) > 0 {
		wake := len(s.carry) > 0 && s.stateErr() == nil
		s.mu.Unlock()
		s.wmu.Unlock()
		if wake {
			s.signal()
		}
		return
	}
	out := s.pending
	s.pending, s.spare = s.spare[:0], out[:0]
	s.mu.Unlock()
	n, err := s.tryWrite(out)
	if err != nil {
		_ = s.fail(err, out[s.frameStart(out, n):])
		s.wmu.Unlock()
		return
	}
	left := n < len(out)
	s.mu.Lock()
	if left {
		s.carrySkip = s.frameStart(out, n) - n
		s.carry = append(s.carry[:0], out[n:]...)
	}
	s.spare = out[:0]
	s.mu.Unlock()
	s.wmu.Unlock()
	if left {
		s.signal()
	}
}

func (s *Conn) flusher() {
	defer s.wg.Done()
	var t *time.Timer
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		if s.linger > 0 {
			if t == nil {
				t = time.NewTimer(s.linger)
			} else {
				t.Reset(s.linger)
			}
			select {
			case <-t.C:
			case <-s.done:
				return
			}
		}
		s.wmu.Lock()
		err := s.writePending()
		s.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// writePending writes the carry, then everything pending, in as few writes
// as it takes for the buffer to stay empty; each write may block up to the
// write timeout. The caller holds wmu. On a write error it fails the
// connection (see fail).
func (s *Conn) writePending() error {
	s.mu.Lock()
	carry, skip := s.carry, s.carrySkip // only holders of wmu change them
	s.mu.Unlock()
	if len(carry) > 0 {
		if n, err := s.writeBlocking(carry); err != nil {
			// rest is the carry's unwritten tail: fail must not report
			// the carry a second time.
			s.mu.Lock()
			s.carry, s.carrySkip = nil, 0
			s.mu.Unlock()
			return s.fail(err, carry[s.unwrittenFrom(carry, skip, n):])
		}
		s.mu.Lock()
		s.carry, s.carrySkip = s.carry[:0], 0
		s.mu.Unlock()
	}
	for {
		s.mu.Lock()
		out := s.pending
		s.pending, s.spare = s.spare[:0], out[:0] // never leave pending and spare sharing an array
		s.mu.Unlock()
		if len(out) == 0 {
			return nil
		}
		n, err := s.writeBlocking(out)
		if err != nil {
			return s.fail(err, out[s.frameStart(out, n):])
		}
		s.mu.Lock()
		s.spare = out[:0]
		s.mu.Unlock()
	}
}

// writeBlocking writes p whole, waiting up to the write timeout. It first
// makes one non-blocking attempt (tryWrite) when it can: the socket takes it
// all in the common case, and the raw call spares the scheduler's system
// call bookkeeping (see rawIO). Only what remains waits in the poller.
func (s *Conn) writeBlocking(p []byte) (int, error) {
	if s.raw.nonBlocking() && !s.closing.Load() && len(p) > 0 {
		n, err := s.tryWrite(p)
		if err != nil || n == len(p) {
			return n, err
		}
		m, err := s.writeWaiting(p[n:])
		return n + m, err
	}
	return s.writeWaiting(p)
}

// writeWaiting writes p whole through the poller, waiting up to the write
// timeout (the deadline is cleared again: it would also fail later
// non-blocking attempts).
func (s *Conn) writeWaiting(p []byte) (int, error) {
	if s.writeTimeout > 0 {
		_ = s.Conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		defer s.Conn.SetWriteDeadline(time.Time{})
	}
	if s.closing.Load() { // Close bounds a write in progress; so is this one
		_ = s.Conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
	n, err := s.Conn.Write(p)
	if n > 0 {
		s.wrote()
	}
	return n, err
}

// tryWrite makes one non-blocking write attempt of p and returns how many
// bytes the socket took (0 when it would block). The caller holds wmu.
func (s *Conn) tryWrite(p []byte) (int, error) {
	n, err := s.raw.tryWrite(p)
	if n > 0 {
		s.wrote()
	}
	return n, err
}
