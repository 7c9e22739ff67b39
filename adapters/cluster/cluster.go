// Package cluster is Sticky's shared memory on NATS JetStream: the
// replicated log every node appends its changes to and applies, in order,
// to its own store (core.Log and the consumer that feeds core's Apply).
package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/core"
)

// Defaults of Options.
const (
	DefaultReplicas      = 3
	DefaultAppendTimeout = 2 * time.Second
	// DefaultMaxLag is how many entries a node may be behind the log and
	// still call itself ready.
	DefaultMaxLag = 1000
)

// Metadata keys of the stream: which memory it is, and a check value of
// the encryption key the nodes share, so a node with another key is told
// before it writes anything.
const (
	metaMemory   = "sticky_memory"
	metaKeyCheck = "sticky_key_check"
	metaVersion  = "sticky_log_version"
	logVersion   = "1"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options configures Open.
type Options struct {
	// Conn is the NATS connection (embedded or external server), for Open.
	Conn *nats.Conn
	// Name names the shared memory (STICKY_CLUSTER); nodes with the same
	// name on the same NATS share it.
	Name string
	// Replicas of the stream (default 3; 1 for a single NATS server).
	Replicas int
	// Key is the nodes' encryption key, if any. Only a check value derived
	// from it is stored in NATS.
	Key []byte
	// AppendTimeout bounds one append (default 2s).
	AppendTimeout time.Duration
	// MaxLag is how far behind the log a ready node may be (default 1000).
	MaxLag uint64
	// WaitConnected is how long Open waits for JetStream to answer
	// before giving up (default 30s).
	WaitConnected time.Duration
	// SnapshotEvery is how often a node stores a snapshot of the memory
	// (default 1h); SnapshotAfterErasure how soon after an erasure
	// (default 1m). KeepEntries is how many entries before the snapshot
	// the stream keeps (default 10000).
	SnapshotEvery        time.Duration
	SnapshotAfterErasure time.Duration
	KeepEntries          uint64
	Logger               *slog.Logger
}

// Applier is the engine as the log's consumer sees it.
type Applier interface {
	Apply(seq uint64, entry []byte, sum [32]byte) error
	Skip(seq uint64, sum [32]byte) error
	Applied() core.ApplyState
	Snapshotter
}

// errRestored makes the follower start again after the node was restored
// from a snapshot.
var errRestored = errors.New("restored from a snapshot")

// hdrErases marks an erasure's entry with the erased customer's key id:
// once a node has applied it, the key is destroyed.
const hdrErases = "Sticky-Erases"

// Memory is one node's handle on the shared memory.
type Memory struct {
	opts    Options
	log     *slog.Logger
	js      jetstream.JetStream
	stream  string
	subject string
	id      string

	last      atomic.Uint64 // the log's last sequence, as last seen
	first     atomic.Uint64
	following atomic.Bool // a consumer is delivering
	// kick makes follow drop its consumer and start a new one (watch
	// does, when the node stopped applying while the stream holds more).
	kick     chan struct{}
	caughtUp atomic.Bool // has been level with the log since starting
	opened   atomic.Bool

	nc          *nats.Conn
	keys        *keyring
	erased      chan struct{} // an erasure was applied: snapshot soon
	lastErasure atomic.Int64

	mu       sync.Mutex
	writable bool
	why      string
	appliedF func() core.ApplyState
}

var _ core.Log = (*Memory)(nil)

// StreamName is the JetStream stream holding the memory called name.
func StreamName(name string) string { return "STICKY_MEMORY_" + name }

// Subject is where the entries of the memory called name are published.
func Subject(name string) string { return "sticky.memory." + name }

// New checks the options; Open then connects the memory to NATS.
func New(o Options) (*Memory, error) {
	if !validName.MatchString(o.Name) {
		return nil, fmt.Errorf("the cluster name %q must be 1-64 letters, digits, '_' or '-'", o.Name)
	}
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.AppendTimeout <= 0 {
		o.AppendTimeout = DefaultAppendTimeout
	}
	if o.MaxLag == 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.WaitConnected <= 0 {
		o.WaitConnected = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = time.Hour
	}
	if o.SnapshotAfterErasure <= 0 {
		o.SnapshotAfterErasure = time.Minute
	}
	if o.KeepEntries == 0 {
		o.KeepEntries = 10000
	}
	return &Memory{erased: make(chan struct{}, 1), opts: o, log: o.Logger.With("component", "cluster"),
		stream: StreamName(o.Name), subject: Subject(o.Name), why: "not connected to NATS yet"}, nil
}

// Open checks the NATS and the stream and creates the stream if this is the
// first node of the memory. It refuses, before writing anything, a NATS
// without JetStream, a stream that is not a Sticky memory of this name,
// and an encryption key other than the one the memory was created with.
// Until Open succeeds, Append refuses.
func (m *Memory) Open(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	m.js, m.nc = js, nc
	wctx, cancel := context.WithTimeout(ctx, m.opts.WaitConnected)
	defer cancel()
	info, err := m.ensureStream(wctx)
	if err != nil {
		return err
	}
	// Like the stream, the bucket may take a few tries while the JetStream
	// cluster settles; each try has its own deadline.
	for {
		actx, cancel := context.WithTimeout(wctx, 2*time.Second)
		m.keys, err = newKeyring(actx, js, "STICKY_KEYS_"+m.opts.Name, info.Config.Replicas, m.opts.Key)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("JetStream did not answer in time: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	m.id = m.opts.Name + "@" + info.Created.UTC().Format(time.RFC3339Nano)
	m.observe(info)
	m.setWritable(info.Cluster == nil || info.Cluster.Leader != "", "no stream leader")
	m.opened.Store(true)
	return nil
}

// Open is New and Memory.Open in one.
func Open(ctx context.Context, o Options) (*Memory, error) {
	m, err := New(o)
	if err != nil {
		return nil, err
	}
	if o.Conn == nil {
		return nil, errors.New("cluster: no NATS connection")
	}
	if err := m.Open(ctx, o.Conn); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Memory) keyCheck() string {
	if len(m.opts.Key) == 0 {
		return "none"
	}
	mac := hmac.New(sha256.New, m.opts.Key)
	mac.Write([]byte("sticky shared memory key check v1"))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// ensureStream finds or creates the stream, retrying while JetStream is
// still forming (a cluster electing its meta leader answers "no responders"
// or "temporarily unavailable" for a while after start).
func (m *Memory) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	cfg := jetstream.StreamConfig{
		Name:        m.stream,
		Description: "Sticky shared memory " + m.opts.Name + ": every change, in order",
		Subjects:    []string{m.subject},
		Storage:     jetstream.FileStorage,
		Replicas:    m.opts.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  1 << 20,
		Metadata:    map[string]string{metaMemory: m.opts.Name, metaKeyCheck: m.keyCheck(), metaVersion: logVersion},
	}
	var lastErr error
	for {
		// Each attempt has its own deadline: a request sent before the
		// JetStream cluster has a leader gets no answer at all.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := m.streamInfo(actx)
		if err == nil {
			cancel()
			return info, m.verify(info)
		}
		noJS := errors.Is(err, nats.ErrNoResponders) && m.nc.IsConnected() && !serverHasJetStream(m.nc)
		if noJS || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			cancel()
			return nil, errors.New("the NATS server has no JetStream: a cluster needs JetStream enabled (nats-server -js, or jetstream {} in its config)")
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, cerr := m.js.CreateStream(actx, cfg)
			if cerr == nil {
				cancel()
				m.log.Info("created the shared memory", "stream", m.stream, "replicas", m.opts.Replicas)
				return s.CachedInfo(), nil
			}
			if errors.Is(cerr, jetstream.ErrStreamNameAlreadyInUse) {
				cancel()
				continue // another node created it first
			}
			if strings.Contains(cerr.Error(), "replicas") || strings.Contains(cerr.Error(), "insufficient resources") {
				cancel()
				return nil, fmt.Errorf("cannot create the shared memory with %d replicas: %v (STICKY_CLUSTER_REPLICAS must not exceed the NATS servers with JetStream; 1 for a single server)", m.opts.Replicas, cerr)
			}
			err = cerr
		}
		cancel()
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("JetStream did not answer in time: %v", lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (m *Memory) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := m.js.Stream(ctx, m.stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func (m *Memory) verify(info *jetstream.StreamInfo) error {
	md := info.Config.Metadata
	switch {
	case md[metaMemory] != m.opts.Name:
		return fmt.Errorf("the stream %s on this NATS is not the Sticky shared memory %q; refusing to use it", m.stream, m.opts.Name)
	case md[metaVersion] != logVersion:
		return fmt.Errorf("the shared memory %q was written by a Sticky with log version %q; this node reads version %s: upgrade it", m.opts.Name, md[metaVersion], logVersion)
	case md[metaKeyCheck] != m.keyCheck():
		if md[metaKeyCheck] == "none" || m.keyCheck() == "none" {
			return fmt.Errorf("the shared memory %q and this node disagree on encryption: one has STICKY_ENCRYPTION_KEY set and the other not; every node needs the same key", m.opts.Name)
		}
		return fmt.Errorf("this node's encryption key is not the one the shared memory %q was created with (STICKY_ENCRYPTION_KEY differs); every node needs the same key", m.opts.Name)
	}
	if info.Config.Replicas != m.opts.Replicas {
		m.log.Warn("the shared memory has another replica count than this node's setting; keeping the stream's", "stream", info.Config.Replicas, "setting", m.opts.Replicas)
	}
	return nil
}

// ID identifies this memory and the incarnation of its stream: a store that
// applied one stream must not apply another that merely has the same name.
func (m *Memory) ID() string { return m.id }

// Append publishes entry and returns its sequence once the stream's
// replicas have it.
func (m *Memory) Append(ctx context.Context, e core.Entry) (uint64, error) {
	if !m.opened.Load() {
		return 0, errors.New("not connected to the shared memory yet")
	}
	msg := nats.NewMsg(m.subject)
	msg.Data = e.Data
	if len(e.Subjects) > 0 {
		sealed, err := m.keys.sealEntry(ctx, e.Data, e.Subjects)
		if err != nil {
			m.setWritable(false, "data keys: "+err.Error())
			return 0, fmt.Errorf("data keys: %w", err)
		}
		msg.Data = sealed
	}
	if e.Erases != "" {
		msg.Header.Set(hdrErases, keyID(e.Erases))
	}
	// The caller's deadline bounds the sealing (an import batch makes many
	// keys); the publish itself has AppendTimeout at most.
	pctx, cancel := context.WithTimeout(ctx, m.opts.AppendTimeout)
	defer cancel()
	ack, err := m.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(m.stream))
	if err != nil {
		why := err.Error()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			why = "no quorum of the stream's servers answered"
		}
		m.setWritable(false, why)
		return 0, errors.New(why)
	}
	m.setWritable(true, "")
	if ack.Sequence > m.last.Load() {
		m.last.Store(ack.Sequence)
	}
	return ack.Sequence, nil
}

func (m *Memory) setWritable(ok bool, why string) {
	m.mu.Lock()
	m.writable, m.why = ok, why
	m.mu.Unlock()
}

func (m *Memory) observe(info *jetstream.StreamInfo) {
	if l := info.State.LastSeq; l > m.last.Load() {
		m.last.Store(l)
	}
	m.first.Store(info.State.FirstSeq)
}

// ErrBehind means the log no longer holds the entries this node needs next
// (they were removed from the stream): the node must be restored from a
// snapshot of another node.
var ErrBehind = errors.New("the shared memory no longer holds the entries this node needs")

// Run follows the log and applies every entry through a, in order, until
// ctx ends. It reconnects by itself; it returns early only for an entry
// the engine cannot read (core.ErrBadEntry) or ErrBehind.
func (m *Memory) Run(ctx context.Context, a Applier) error {
	m.mu.Lock()
	m.appliedF = a.Applied
	m.mu.Unlock()
	m.kick = make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.watch(ctx, a) }()
	go func() { defer wg.Done(); m.snapshotLoop(ctx, a, a) }()
	defer wg.Wait()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := m.follow(ctx, a)
		if errors.Is(err, errRestored) {
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, core.ErrBadEntry) || errors.Is(err, ErrBehind) {
			return err
		}
		m.following.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("following the shared memory; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return nil
}

func (m *Memory) follow(ctx context.Context, a Applier) error {
	from := a.Applied().Seq + 1
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	cons, err := m.js.OrderedConsumer(ctx, m.stream, cfg)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		case <-m.kick:
		}
		it.Stop()
	}()
	m.following.Store(true)
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		want := a.Applied().Seq + 1
		if seq > want {
			// The stream no longer holds what this node needs next: start
			// from the latest snapshot, then follow from there.
			if err := m.restore(ctx, a, seq); err != nil {
				return err
			}
			return errRestored
		}
		if seq+md.NumPending > m.last.Load() {
			m.last.Store(seq + md.NumPending)
		}
		stored := msg.Data()
		sum := sha256.Sum256(stored)
		for {
			err := m.applyOne(ctx, a, seq, stored, sum)
			if err == nil {
				break
			}
			if errors.Is(err, core.ErrBadEntry) {
				return err
			}
			m.log.Warn("applying an entry of the shared memory failed; retrying", "seq", seq, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		if id := msg.Headers().Get(hdrErases); id != "" {
			m.lastErasure.Store(time.Now().UnixNano())
			select {
			case m.erased <- struct{}{}:
			default:
			}
			// Every node destroys the key; the first one does it, the
			// others find it gone. A failure is retried by the next node
			// and the next erasure, and said here.
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := m.keys.destroy(dctx, id); err != nil {
				m.log.Error("destroying an erased customer's data key failed; another node or a later erasure retries it", "seq", seq, "err", err)
			}
			cancel()
		}
		if md.NumPending == 0 {
			m.caughtUp.Store(true)
		}
	}
}

func (m *Memory) applyOne(ctx context.Context, a Applier, seq uint64, stored []byte, sum [32]byte) error {
	kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	plain, err := m.keys.openEntry(kctx, stored)
	cancel()
	if err != nil {
		return err
	}
	if plain == nil {
		return a.Skip(seq, sum) // every customer it concerns was erased
	}
	return a.Apply(seq, plain, sum)
}

// watch asks the stream for its state every second, so that lag and a
// missing leader show even when nothing is delivered.
func (m *Memory) watch(ctx context.Context, a Applier) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var stall stallWatch
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := m.streamInfo(ictx)
		cancel()
		if err != nil {
			m.setWritable(false, "the stream does not answer: "+err.Error())
			continue
		}
		m.observe(info)
		if info.Cluster != nil && info.Cluster.Leader == "" {
			m.setWritable(false, "the stream has no leader (a quorum of its servers is down)")
		} else {
			m.setWritable(true, "")
		}
		applied := a.Applied().Seq
		if applied >= info.State.LastSeq {
			m.caughtUp.Store(true)
		}
		if stall.stalled(applied, info.State.LastSeq, time.Now()) && m.following.Load() {
			m.log.Warn("the shared memory's consumer delivers nothing while the stream holds more; starting a new one", "applied", applied, "last", info.State.LastSeq)
			select {
			case m.kick <- struct{}{}:
			default:
			}
		}
	}
}

// followStall is how long a node may apply nothing while the stream holds
// entries it has not applied before its consumer is replaced.
const followStall = 10 * time.Second

// stallWatch tells when a node has applied nothing for followStall while
// the stream holds entries past what it applied. An ordered consumer on a
// NATS server that went away could leave the node waiting for ever:
// cluster tests saw a node stay at 0 of 600 applied, and writes through it
// time out, while the other nodes went on.
type stallWatch struct {
	applied uint64
	since   time.Time // when applied last moved, or the node was level
}

// stalled notes what the node applied and the stream's last sequence at
// now, and says whether the consumer should be replaced; after a yes it
// waits another followStall.
func (w *stallWatch) stalled(applied, last uint64, now time.Time) bool {
	if w.since.IsZero() || applied != w.applied || applied >= last {
		w.applied, w.since = applied, now
		return false
	}
	if now.Sub(w.since) < followStall {
		return false
	}
	w.since = now
	return true
}

// Status is the node's view of the shared memory.
type Status struct {
	Memory   string `json:"cluster"`
	Stream   string `json:"stream"`
	Applied  uint64 `json:"applied_sequence"`
	Last     uint64 `json:"stream_sequence"`
	Lag      uint64 `json:"lag"`
	Digest   string `json:"digest"`
	Writable bool   `json:"writable"`
	Ready    bool   `json:"ready"`
	Detail   string `json:"detail,omitempty"`
}

// Status says how far this node is, and whether it can write.
func (m *Memory) Status() Status {
	m.mu.Lock()
	writable, why, applied := m.writable, m.why, m.appliedF
	m.mu.Unlock()
	st := Status{Memory: m.opts.Name, Stream: m.stream, Last: m.last.Load(), Writable: writable}
	if applied != nil {
		as := applied()
		st.Applied, st.Digest = as.Seq, as.Digest
	}
	if st.Last > st.Applied {
		st.Lag = st.Last - st.Applied
	}
	switch {
	case applied == nil:
		st.Detail = "not following the log yet"
	case !m.caughtUp.Load():
		st.Detail = fmt.Sprintf("catching up: %d entries behind", st.Lag)
	case st.Lag > m.opts.MaxLag:
		st.Detail = fmt.Sprintf("%d entries behind the log (more than %d)", st.Lag, m.opts.MaxLag)
	case !m.following.Load():
		st.Detail = "not following the log (NATS unreachable?)"
	default:
		st.Ready = true
	}
	if !writable {
		if st.Detail != "" {
			st.Detail += "; "
		}
		st.Detail += "writes refused: " + why
	}
	return st
}

// serverHasJetStream says whether the NATS server the connection is on runs
// JetStream (its INFO says so); a server that does not, and that nothing
// answers JetStream requests through, will never hold the memory.
func serverHasJetStream(nc *nats.Conn) bool {
	js, _ := nc.ConnectedServerJetStream()
	return js
}
