package sockio

import "time"

// fail makes err sticky, closes the socket (so that the client library's
// reader fails and it reconnects) and reports as unsent the frames of rest
// (the unwritten tail of a buffer being written, from a frame boundary), of
// the carry and of everything pending. It returns err.
func (s *Conn) fail(err error, rest []byte) error {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	var carry []byte
	if s.carrySkip < len(s.carry) {
		carry = s.carry[s.carrySkip:]
	}
	pending := s.pending
	s.carry, s.carrySkip, s.pending, s.spare = nil, 0, nil, nil
	s.mu.Unlock()
	s.dead.Store(true)
	_ = s.Conn.Close()
	s.reportUnsent(rest)
	s.reportUnsent(carry)
	s.reportUnsent(pending)
	return err
}

// Close stops the flusher, writes what is left (carry and pending, within
// one second), reports what it could not write as unsent, and closes the
// socket. It is idempotent; a second caller waits for the first.
func (s *Conn) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *Conn) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	// A flusher blocked on a peer that stopped reading gives up within
	// closeWriteTimeout (see writeWaiting for the other order).
	s.closing.Store(true)
	_ = s.Conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	close(s.done)
	s.wg.Wait()
	s.wmu.Lock() // no Flush is writing
	defer s.wmu.Unlock()
	s.mu.Lock()
	failed := s.err != nil
	carry, skip, pending := s.carry, s.carrySkip, s.pending
	s.carry, s.carrySkip, s.pending, s.spare = nil, 0, nil, nil
	s.mu.Unlock()
	if !failed {
		_ = s.Conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		bufs := [][]byte{carry, pending}
		skips := []int{skip, 0}
		for i, out := range bufs {
			if len(out) == 0 {
				continue
			}
			n, err := s.Conn.Write(out)
			if n > 0 {
				s.wrote()
			}
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				s.reportUnsent(out[s.unwrittenFrom(out, skips[i], n):])
				if i == 0 {
					s.reportUnsent(pending)
				}
				break
			}
		}
	}
	s.dead.Store(true)
	return s.Conn.Close()
}

// unwrittenFrom returns the offset of the first frame of buf that starts at
// or after offset n, where frames start at offset skip (the bytes before it
// end a frame partly written earlier).
func (s *Conn) unwrittenFrom(buf []byte, skip, n int) int {
	if skip >= len(buf) {
		return len(buf)
	}
	return skip + s.frameStart(buf[skip:], max(n-skip, 0))
}

// frameStart returns the offset of the first frame of buf (which starts on a
// frame) that starts at or after offset n, len(buf) when none does. Without
// Options.FrameLen (no unsent report to make) it returns n.
func (s *Conn) frameStart(buf []byte, n int) int {
	if s.frameLen == nil {
		return min(n, len(buf))
	}
	off := 0
	for off < n && off < len(buf) {
		size, ok := s.frameLen(buf[off:])
		if !ok {
			return len(buf)
		}
		off += size
	}
	return min(off, len(buf))
}

// reportUnsent hands frames (from a frame boundary) to Options.OnUnsent.
func (s *Conn) reportUnsent(frames []byte) {
	if s.onUnsent != nil && len(frames) > 0 {
		s.onUnsent(frames)
	}
}
