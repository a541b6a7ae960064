// Package sockio owns the socket under an MQTT client library: a net.Conn
// for many small packets, whose reads are buffered and whose writes are
// coalesced, with the socket's liveness. It knows nothing of MQTT but the
// length of a frame (Options.FrameLen), which it needs to report frames it
// could not write.
//
// Reads go through a buffer (bufio.Reader): a client library that reads
// packet headers byte by byte (paho reads the header and the remaining
// length that way) costs one system call per burst of packets instead of
// about three per packet. A caller that parses packets in place reads the
// buffer itself (Reader).
//
// Writes are coalesced. Write (a whole packet of the client library) and
// BeginAppend/EndAppend (frames the layer above encodes straight into the
// buffer) add to a pending buffer. Flush writes it from the caller's
// goroutine with one non-blocking attempt; whatever would block is left to a
// flusher goroutine, which also writes what Write and kicked appends queued,
// optionally after waiting Options.Linger for more. No caller ever blocks on
// the socket, so the bound on pending bytes (ErrFull) always applies; a
// stalled broker costs memory up to that bound, then refusals.
//
// On Linux the reads and the non-blocking write attempts on a plain TCP
// socket are raw system calls (rawio_linux.go). Elsewhere, and over TLS,
// reads go through net.Conn and the flusher makes every write
// (rawio_other.go).
//
// Bytes count as sent once they reach the socket: frames discarded unwritten
// (the socket failed, or Close could not write them) are handed to
// Options.OnUnsent, whole frames only (a frame partly written counts as
// written).
//
// Liveness: a Conn is Dead once a write failed, Close ran or its reader
// called MarkDead; it is Suspect when it has written and read nothing since
// for longer than a bound (a half-open link, or a peer that stopped
// answering).
package sockio

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the writes.
var (
	// ErrFull: more than Options.MaxPendingBytes wait to be written; nothing
	// was queued.
	ErrFull = errors.New("write buffer full")
	// ErrClosed: Close has begun; nothing was queued.
	ErrClosed = errors.New("connection closed")
)

// Defaults of Options.
const (
	DefaultReadBufferBytes = 64 << 10
	DefaultMaxPendingBytes = 1 << 20
)

// closeWriteTimeout bounds the writes of Close (what is left, and a write of
// the flusher in progress).
const closeWriteTimeout = time.Second

// Options configures a Conn. Zero values take the documented defaults.
type Options struct {
	// ReadBufferBytes is the size of the read buffer. Default
	// DefaultReadBufferBytes (64 KiB).
	ReadBufferBytes int
	// Linger is how long the flusher, once woken, waits for more before it
	// writes. Default 0: it writes at once.
	Linger time.Duration
	// WriteTimeout bounds each blocking write of the flusher; a write that
	// times out fails the connection. Default 0: no bound.
	WriteTimeout time.Duration
	// MaxPendingBytes bounds the bytes waiting to be written: BeginAppend
	// refuses with ErrFull beyond it (Write, for the client library's own
	// packets, never refuses). Default DefaultMaxPendingBytes (1 MiB).
	MaxPendingBytes int
	// PacketLock: the client library writes one packet in several Write
	// calls, holding Lock meanwhile (paho.golang does when its connection is
	// a sync.Locker). BeginAppend then takes that lock too, so that no frame
	// lands between the parts of a packet.
	PacketLock bool
	// FrameLen returns the length of the frame at the start of b (which may
	// extend past b); ok is false when b does not start with a frame header.
	// Required with OnUnsent.
	FrameLen func(b []byte) (size int, ok bool)
	// OnUnsent receives bytes that were accepted (Write, BeginAppend) but are
	// discarded unwritten: whole frames, from a frame boundary, valid during
	// the call only. One failure may make several calls. Optional; it must
	// not block.
	OnUnsent func(frames []byte)
}

// Conn is a net.Conn with a read buffer, coalesced writes and liveness.
// Read and Reader are for one reading goroutine at a time; the other methods
// are safe for concurrent use.
type Conn struct {
	net.Conn
	r   *bufio.Reader
	raw rawIO // raw system calls: reads by the reading goroutine, writes by the holder of wmu

	linger, writeTimeout time.Duration
	limit                int
	packetLock           bool
	frameLen             func([]byte) (int, bool)
	onUnsent             func([]byte)

	pmu sync.Mutex // Lock: a packet of the client library is being written in parts
	wmu sync.Mutex // held while writing to the socket (flusher, Flush or Close)
	mu  sync.Mutex // guards the buffers and the write state below
	// pending is what waits to be written; spare is the other buffer of the
	// pair (written from while pending fills).
	pending, spare []byte
	carry          []byte // what a non-blocking write left; the flusher writes it before pending
	carrySkip      int    // leading bytes of carry that belong to a frame partly written
	appendFrom     int    // len(pending) when BeginAppend took mu
	err            error  // sticky write error
	closed         bool

	dead atomic.Bool
	// unanswered is when (nanotime) the first write since the last read
	// happened, 0 when something was read since the last write.
	unanswered atomic.Int64

	closing   atomic.Bool // Close has begun: writes get closeWriteTimeout at most
	kick      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New wraps c and starts its flusher goroutine, which Close stops.
func New(c net.Conn, o Options) *Conn {
	if o.ReadBufferBytes <= 0 {
		o.ReadBufferBytes = DefaultReadBufferBytes
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.OnUnsent != nil && o.FrameLen == nil {
		panic("sockio: Options.OnUnsent needs Options.FrameLen")
	}
	s := &Conn{
		Conn:         c,
		linger:       o.Linger,
		writeTimeout: o.WriteTimeout,
		limit:        o.MaxPendingBytes,
		packetLock:   o.PacketLock,
		frameLen:     o.FrameLen,
		onUnsent:     o.OnUnsent,
		pending:      make([]byte, 0, 16<<10),
		spare:        make([]byte, 0, 16<<10),
		kick:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	s.raw.init(c)
	s.r = bufio.NewReaderSize(socketReader{s}, o.ReadBufferBytes)
	s.wg.Add(1)
	go s.flusher()
	return s
}

// Read reads through the read buffer.
func (s *Conn) Read(p []byte) (int, error) { return s.r.Read(p) }

// Reader returns the read buffer, for a reader that parses packets where
// they lie (Peek, Discard) instead of copying them out with Read.
func (s *Conn) Reader() *bufio.Reader { return s.r }

// socketReader is the reader under the read buffer: it reads the socket and,
// on every read that returned bytes, records that the peer answered.
type socketReader struct{ s *Conn }

func (r socketReader) Read(p []byte) (int, error) {
	n, err := r.s.raw.read(r.s.Conn, p)
	if n > 0 && r.s.unanswered.Load() != 0 {
		r.s.unanswered.Store(0)
	}
	return n, err
}

// Err returns the sticky write error: the error of the write that failed the
// connection, or nil.
func (s *Conn) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Dead reports whether the connection is done: a write failed, Close ran,
// or MarkDead was called.
func (s *Conn) Dead() bool { return s.dead.Load() }

// MarkDead marks the connection dead without closing it: its reader found
// the stream failed or unusable, and the client library will close it.
func (s *Conn) MarkDead() { s.dead.Store(true) }

// epoch is the origin of nanotime.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since the package was loaded (> 0).
func nanotime() int64 { return int64(time.Since(epoch)) + 1 }

// wrote records a write, for Suspect.
func (s *Conn) wrote() {
	if s.unanswered.Load() == 0 {
		s.unanswered.CompareAndSwap(0, nanotime())
	}
}

// Suspect reports whether the connection has written and read nothing since
// for longer than bound.
func (s *Conn) Suspect(bound time.Duration) bool {
	u := s.unanswered.Load()
	return u != 0 && nanotime()-u > int64(bound)
}
