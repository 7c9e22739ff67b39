package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Snapshots: a node's whole memory in a JetStream object store, so that a
// node joining later starts from it plus the stream's tail, and the
// stream keeps only the entries after the latest snapshot (and KeepEntries
// more, so a node that was briefly away just replays).
//
// A snapshot is sealed with a key of its own, kept in the data key bucket
// and destroyed when the next snapshot replaces it: a snapshot taken
// before an erasure, and every chunk of it left in NATS's files, is
// unreadable once the snapshot after the erasure is in place.
const (
	snapshotObject = "latest"
	metaSeq        = "Sticky-Snapshot-Seq"
	metaKey        = "Sticky-Snapshot-Key"
	chunkSize      = 256 << 10
)

// Snapshotter is the engine's side of snapshots.
type Snapshotter interface {
	Snapshot(w io.Writer) (uint64, error)
	Restore(r io.Reader) error
}

func (m *Memory) objects(ctx context.Context) (jetstream.ObjectStore, error) {
	return m.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: "STICKY_SNAP_" + m.opts.Name, Description: "Sticky shared memory snapshots",
		Storage: jetstream.FileStorage, Replicas: m.opts.Replicas,
	})
}

// SnapshotNow stores a snapshot of s and then removes from the stream the
// entries it makes unnecessary. It returns the sequence the snapshot
// covers.
func (m *Memory) SnapshotNow(ctx context.Context, s Snapshotter) (uint64, error) {
	obs, err := m.objects(ctx)
	if err != nil {
		return 0, err
	}
	old, _ := obs.GetInfo(ctx, snapshotObject)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var kb [12]byte
	_, _ = rand.Read(kb[:])
	keyName := "snapshot-" + hex.EncodeToString(kb[:])
	if err := m.keys.put(ctx, keyName, key); err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	seqc := make(chan uint64, 1)
	go func() {
		sw := &sealWriter{key: key, w: pw}
		seq, err := s.Snapshot(sw)
		if err == nil {
			err = sw.Close()
		}
		seqc <- seq
		pw.CloseWithError(err)
	}()
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: snapshotObject, Headers: map[string][]string{metaKey: {keyName}}}, pr)
	pr.CloseWithError(err)
	seq := <-seqc
	if err != nil {
		_ = m.keys.destroy(ctx, keyName)
		return 0, fmt.Errorf("storing the snapshot: %w", err)
	}
	// The sequence is known only once the copy is written: record it.
	if err := obs.UpdateMeta(ctx, snapshotObject, jetstream.ObjectMeta{Name: snapshotObject,
		Headers: map[string][]string{metaKey: {keyName}, metaSeq: {strconv.FormatUint(seq, 10)}}}); err != nil {
		return 0, fmt.Errorf("recording the snapshot: %w", err)
	}
	if old != nil && old.Headers != nil {
		if k := old.Headers.Get(metaKey); k != "" && k != keyName {
			if err := m.keys.destroy(ctx, k); err != nil {
				m.log.Warn("destroying the previous snapshot's key failed", "err", err)
			}
		}
	}
	if seq > m.opts.KeepEntries {
		stream, err := m.js.Stream(ctx, m.stream)
		if err == nil {
			err = stream.Purge(ctx, jetstream.WithPurgeSequence(seq-m.opts.KeepEntries+1))
		}
		if err != nil {
			m.log.Warn("trimming the stream after a snapshot failed", "err", err)
		}
	}
	m.log.Info("snapshot stored", "sequence", seq, "bytes", info.Size)
	return seq, nil
}

// restore replaces the node's memory with the latest snapshot, if it
// reaches at least need-1 (the entries before need are gone from the stream).
func (m *Memory) restore(ctx context.Context, s Snapshotter, need uint64) error {
	obs, err := m.objects(ctx)
	if err != nil {
		return err
	}
	info, err := obs.GetInfo(ctx, snapshotObject)
	if err != nil {
		return fmt.Errorf("%w, and there is no snapshot to start from: %v", ErrBehind, err)
	}
	seq, _ := strconv.ParseUint(info.Headers.Get(metaSeq), 10, 64)
	if seq+1 < need {
		return fmt.Errorf("%w: the latest snapshot covers entries up to %d, the stream starts at %d", ErrBehind, seq, need)
	}
	key, err := m.keys.get(ctx, info.Headers.Get(metaKey), false)
	if err != nil || key == nil {
		return fmt.Errorf("the snapshot's key is missing: %v", err)
	}
	res, err := obs.Get(ctx, snapshotObject)
	if err != nil {
		return err
	}
	defer res.Close()
	m.log.Info("restoring this node from the latest snapshot", "sequence", seq, "bytes", info.Size)
	return s.Restore(&openReader{key: key, r: bufio.NewReaderSize(res, chunkSize)})
}

// sealWriter encrypts a stream in chunks, each sealed with its index and
// whether it is the last, so a cut or reordered copy does not open.
type sealWriter struct {
	key []byte
	w   io.Writer
	buf []byte
	n   uint64
}

func (s *sealWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := min(chunkSize-len(s.buf), len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) == chunkSize {
			if err := s.flush(false); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

func (s *sealWriter) flush(last bool) error {
	a, err := aead(s.key)
	if err != nil {
		return err
	}
	sealed := seal(a, s.buf, chunkAD(s.n, last))
	s.n++
	s.buf = s.buf[:0]
	if _, err := s.w.Write(binary.AppendUvarint(nil, uint64(len(sealed)))); err != nil {
		return err
	}
	_, err = s.w.Write(sealed)
	return err
}

func (s *sealWriter) Close() error { return s.flush(true) }

func chunkAD(n uint64, last bool) []byte {
	ad := binary.BigEndian.AppendUint64(nil, n)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

type openReader struct {
	key  []byte
	r    *bufio.Reader
	buf  []byte
	n    uint64
	done bool
}

func (o *openReader) Read(p []byte) (int, error) {
	for len(o.buf) == 0 {
		if o.done {
			return 0, io.EOF
		}
		l, err := binary.ReadUvarint(o.r)
		if err != nil {
			return 0, errors.New("the snapshot is cut short")
		}
		if l > chunkSize+1024 {
			return 0, errors.New("corrupt snapshot")
		}
		sealed := make([]byte, l)
		if _, err := io.ReadFull(o.r, sealed); err != nil {
			return 0, errors.New("the snapshot is cut short")
		}
		a, err := aead(o.key)
		if err != nil {
			return 0, err
		}
		if plain, err := open(a, sealed, chunkAD(o.n, false)); err == nil {
			o.buf = plain
		} else if plain, err := open(a, sealed, chunkAD(o.n, true)); err == nil {
			o.buf, o.done = plain, true
		} else {
			return 0, errors.New("the snapshot does not open (corrupt, or sealed with another key)")
		}
		o.n++
	}
	k := copy(p, o.buf)
	o.buf = o.buf[k:]
	return k, nil
}

// snapshotLoop takes a snapshot every SnapshotEvery unless another node
// took one meanwhile, and soon after an erasure, so no snapshot holding
// an erased customer outlives it for long.
func (m *Memory) snapshotLoop(ctx context.Context, s Snapshotter, a Applier) {
	t := time.NewTicker(m.opts.SnapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.erased:
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.opts.SnapshotAfterErasure):
			}
		}
		if !m.caughtUp.Load() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		if obs, err := m.objects(sctx); err == nil {
			if info, err := obs.GetInfo(sctx, snapshotObject); err == nil {
				seq, _ := strconv.ParseUint(info.Headers.Get(metaSeq), 10, 64)
				recent := time.Since(info.ModTime) < m.opts.SnapshotEvery/2
				if seq >= a.Applied().Seq || (recent && !m.erasedSince(info.ModTime)) {
					cancel()
					continue // another node has one as fresh
				}
			}
		}
		if _, err := m.SnapshotNow(sctx, s); err != nil {
			m.log.Warn("taking a snapshot failed; retrying at the next period", "err", err)
		}
		cancel()
	}
}

func (m *Memory) erasedSince(t time.Time) bool {
	last := m.lastErasure.Load()
	return last != 0 && time.Unix(0, last).After(t)
}
