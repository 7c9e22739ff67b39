package cluster

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Entries that hold personal data are stored encrypted, for the customers
// they concern: a fresh content key encrypts the entry, and the content
// key is wrapped once with each customer's data key. Data keys live in a
// JetStream key-value bucket (themselves wrapped with the nodes'
// STICKY_ENCRYPTION_KEY when one is set). Erasing a customer destroys
// their data key, so every entry about them that no other live customer
// shares becomes unreadable, in the stream, in NATS's own logs and in
// any copy of them, without rewriting the stream.
//
// Stored entry formats (first byte):
//
//	'j'...                       plain: an entry with no personal data
//	'E' uvarint(len) header body encrypted; header is JSON envelope
const formatSealed = 'E'

type envelope struct {
	Keys []wrapped `json:"k"`
}

type wrapped struct {
	ID  string `json:"i"` // keyID of the customer
	Key []byte `json:"w"` // the content key, sealed with the customer's data key
}

// keyID names a customer's data key without naming the customer: the
// bucket and the entries' headers hold only this.
func keyID(ref string) string {
	sum := sha256.Sum256([]byte("sticky data key v1\x00" + ref))
	return hex.EncodeToString(sum[:16])
}

// keyring reads and creates the customers' data keys.
type keyring struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	bucket string
	kek    cipher.AEAD // wraps data keys at rest in NATS; nil without a key

	mu    sync.Mutex
	cache map[string][]byte // keyID -> data key
}

const maxCachedKeys = 200_000

func newKeyring(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, master []byte) (*keyring, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Sticky customers' data keys (an erased customer's is destroyed)",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("the data key bucket %s: %w", bucket, err)
	}
	k := &keyring{kv: kv, js: js, bucket: bucket, cache: map[string][]byte{}}
	if len(master) > 0 {
		kk := sha256.Sum256(append([]byte("sticky key wrapping v1\x00"), master...))
		if k.kek, err = aead(kk[:]); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func aead(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func seal(a cipher.AEAD, plain, ad []byte) []byte {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, ad)
}

func open(a cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}

func (k *keyring) cached(id string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cache[id]
}

func (k *keyring) remember(id string, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache) // crude, but bounded: keys are read again on demand
	}
	k.cache[id] = key
}

func (k *keyring) decode(raw []byte, id string) ([]byte, error) {
	if k.kek == nil {
		return raw, nil
	}
	return open(k.kek, raw, []byte(id))
}

// get returns a customer's data key, creating it when create is set; nil
// (and no error) means the key does not exist: the customer was erased.
func (k *keyring) get(ctx context.Context, id string, create bool) ([]byte, error) {
	if key := k.cached(id); key != nil {
		return key, nil
	}
	for {
		e, err := k.kv.Get(ctx, id)
		if err == nil {
			key, err := k.decode(e.Value(), id)
			if err != nil {
				return nil, fmt.Errorf("a data key does not open with this node's STICKY_ENCRYPTION_KEY: %w", err)
			}
			k.remember(id, key)
			return key, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		if !create {
			return nil, nil
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		stored := key
		if k.kek != nil {
			stored = seal(k.kek, key, []byte(id))
		}
		if _, err := k.kv.Create(ctx, id, stored); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another node created it first: use theirs
			}
			return nil, err
		}
		k.remember(id, key)
		return key, nil
	}
}

// put stores a key under name (a snapshot's key).
func (k *keyring) put(ctx context.Context, name string, key []byte) error {
	stored := key
	if k.kek != nil {
		stored = seal(k.kek, key, []byte(name))
	}
	if _, err := k.kv.Create(ctx, name, stored); err != nil {
		return err
	}
	k.remember(name, key)
	return nil
}

// destroy erases a customer's data key: the message holding it is
// overwritten in the bucket's stream, then its subject purged.
func (k *keyring) destroy(ctx context.Context, id string) error {
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
	e, err := k.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // destroyed already (every node destroys it)
	}
	if err != nil {
		return err
	}
	s, err := k.js.Stream(ctx, "KV_"+k.bucket)
	if err != nil {
		return err
	}
	if err := s.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return k.kv.Purge(ctx, id)
}

// sealEntry encrypts data for the customers refs.
func (k *keyring) sealEntry(ctx context.Context, data []byte, refs []string) ([]byte, error) {
	ck := make([]byte, 32)
	_, _ = rand.Read(ck)
	env := envelope{}
	for _, ref := range refs {
		id := keyID(ref)
		dk, err := k.get(ctx, id, true)
		if err != nil {
			return nil, err
		}
		a, err := aead(dk)
		if err != nil {
			return nil, err
		}
		env.Keys = append(env.Keys, wrapped{ID: id, Key: seal(a, ck, []byte(id))})
	}
	a, err := aead(ck)
	if err != nil {
		return nil, err
	}
	body := seal(a, data, nil)
	hdr, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	out := append([]byte{formatSealed}, binary.AppendUvarint(nil, uint64(len(hdr)))...)
	out = append(out, hdr...)
	return append(out, body...), nil
}

// openEntry decrypts a sealed entry; nil data (and no error) means none of
// its customers' keys exists any more.
func (k *keyring) openEntry(ctx context.Context, stored []byte) ([]byte, error) {
	if len(stored) == 0 || stored[0] != formatSealed {
		return stored, nil
	}
	n, l := binary.Uvarint(stored[1:])
	if l <= 0 || uint64(len(stored)-1-l) < n {
		return nil, errors.New("corrupt sealed entry")
	}
	var env envelope
	if err := json.Unmarshal(stored[1+l:1+l+int(n)], &env); err != nil {
		return nil, fmt.Errorf("corrupt sealed entry: %w", err)
	}
	body := stored[1+l+int(n):]
	for _, w := range env.Keys {
		dk, err := k.get(ctx, w.ID, false)
		if err != nil {
			return nil, err
		}
		if dk == nil {
			continue
		}
		a, err := aead(dk)
		if err != nil {
			return nil, err
		}
		ck, err := open(a, w.Key, []byte(w.ID))
		if err != nil {
			continue // a key created again after an erasure: not this entry's
		}
		ca, err := aead(ck)
		if err != nil {
			return nil, err
		}
		return open(ca, body, nil)
	}
	return nil, nil
}
