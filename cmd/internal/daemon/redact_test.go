package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// planted are the numbers written into the store before redaction, in
// the forms they were written in.
var planted = []string{"4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444", "5555555555554444", "123-45-6789"}

func findPlanted(b []byte) string {
	for _, n := range planted {
		if bytes.Contains(b, []byte(n)) {
			return n
		}
	}
	return ""
}

// onDisk names the files under dir that hold a planted number.
func onDisk(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); findPlanted(b) != "" {
				out = append(out, filepath.Base(p))
			}
		}
		return nil
	})
	return out
}

// plantStore writes customers whose interactions hold card numbers, the
// way a store from before redaction holds them.
func plantStore(t *testing.T, dir string, customers int, key ...byte) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1, EncryptionKey: key, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	e := core.New(core.Options{Store: db})
	for i := range customers {
		ref := "cust_planted_" + string(rune('a'+i))
		_, err := e.End(context.Background(), core.EndRequest{CallID: ref + "_chat", CustomerRef: ref, Channel: "chat",
			Variables: map[string]string{"summary": "Customer: my card 4111 1111 1111 1111 was charged twice",
				"note": "second card 5555-5555-5555-4444, ssn 123-45-6789"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// cancelOnProgress is stderr that ends the run at its first progress line.
type cancelOnProgress struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel func()
}

func (w *cancelOnProgress) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(b, []byte("records/s")) {
		w.cancel()
	}
	return w.buf.Write(b)
}

func TestRedactSweepsAStoreAndContinuesAfterAnInterruption(t *testing.T) {
	dir := t.TempDir()
	const customers = 5 // 5 customer records and 5 interaction records
	plantStore(t, dir, customers)
	if len(onDisk(t, dir)) == 0 {
		t.Fatal("the planted numbers are not on disk: the test would prove nothing")
	}
	env := func(k string) string {
		return map[string]string{"STICKY_DATA_DIR": dir, "STICKY_STORE_COMPRESSION": "none"}[k]
	}

	// interrupted after its first batch of 2 records
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelOnProgress{cancel: cancel}
	code := Command(ctx, "test", []string{"redact", "-batch", "2", "-progress-every", "0"}, env, io.Discard, w, noPBX)
	first := w.buf.String()
	t.Log(first)
	if code != 1 || !strings.Contains(first, "test redact: 2/10 records") || !strings.Contains(first, "stopped at 2/10 records") {
		t.Fatalf("interrupted run: exit %d\n%s", code, first)
	}

	// again: it continues at 2 and finishes
	var errb bytes.Buffer
	code = Command(context.Background(), "test", []string{"redact", "-batch", "2", "-progress-every", "0"}, env, io.Discard, &errb, noPBX)
	second := errb.String()
	t.Log(second)
	if code != 0 || !strings.Contains(second, "continuing an interrupted sweep at 2/10 records") ||
		!strings.Contains(second, "done: 10/10 records") || !strings.Contains(second, "10 rewritten") {
		t.Fatalf("second run: exit %d\n%s", code, second)
	}
	// per customer: a card in the summary variable, a card and an SSN in
	// the note, a card in the recent interaction and in the interaction
	if !strings.Contains(second, "redacted card=20 cvv=0 expiry=0 ssn=5 iban=0 pattern=0") {
		t.Errorf("counts wrong:\n%s", second)
	}
	// the output holds counts, never customer data
	for _, out := range []string{first, second} {
		if n := findPlanted([]byte(out)); n != "" || strings.Contains(out, "cust_planted") || strings.Contains(out, "charged twice") {
			t.Errorf("the output holds customer data:\n%s", out)
		}
	}
	// the replaced text is gone from disk, the redacted text is there
	if files := onDisk(t, dir); len(files) > 0 {
		t.Errorf("planted numbers still on disk in %v", files)
	}
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prof, err := core.New(core.Options{Store: db}).Customer(context.Background(), "cust_planted_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := prof.Variables["summary"].Value; got != "Customer: my card [card ending 1111] was charged twice" {
		t.Errorf("summary %q", got)
	}
	if got := prof.Variables["note"].Value; got != "second card [card ending 4444], ssn [ssn]" {
		t.Errorf("note %q", got)
	}
}

// An encrypted store is swept and compacted with its key, and opens with
// it afterwards.
func TestRedactSweepsAnEncryptedStore(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	plantStore(t, dir, 3, key...)
	env := map[string]string{"STICKY_DATA_DIR": dir, "STICKY_STORE_COMPRESSION": "none", "STICKY_ENCRYPTION_KEY": hex.EncodeToString(key)}
	if code, msg := command(t, env, "redact"); code != 0 || !strings.Contains(msg, "redacted card=12 ") || !strings.Contains(msg, "compacted") {
		t.Fatalf("exit %d\n%s", code, msg)
	}
	if _, _, err := openWith(dir, nil); err == nil {
		t.Fatal("the compacted store opens without its key")
	}
	db, err := store.Open(store.Options{Dir: dir, EncryptionKey: key, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prof, err := core.New(core.Options{Store: db}).Customer(context.Background(), "cust_planted_c", 0)
	if err != nil || !strings.HasSuffix(prof.Variables["summary"].Value, "[card ending 1111] was charged twice") {
		t.Fatalf("%v %+v", err, prof)
	}
}

func TestRedactionAtTheDoorOfTheProcess(t *testing.T) {
	dir := t.TempDir()
	addr, stop := runDaemon(t, map[string]string{"STICKY_DATA_DIR": dir, "STICKY_REDACT_PATTERNS": `ACCT-\d{6,8}`})
	code, body := postJSON(t, "http://"+addr+"/v1/calls/end", `{"call_id":"chat_1","customer_ref":"cust_door","channel":"chat",
		"variables":{"summary":"card 4111 1111 1111 1111 and ACCT-1234567, ssn 123-45-6789"}}`)
	if code != 200 {
		t.Fatalf("end %d %s", code, body)
	}
	_, prof := get(t, "http://"+addr+"/v1/customers/cust_door")
	if !strings.Contains(prof, "card [card ending 1111] and [redacted], ssn [ssn]") || findPlanted([]byte(prof)) != "" {
		t.Errorf("profile %s", prof)
	}
	_, metrics := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`sticky_redactions_total{kind="card"} 1`, `sticky_redactions_total{kind="ssn"} 1`,
		`sticky_redactions_total{kind="pattern"} 1`, `sticky_redactions_total{kind="iban"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if files := onDisk(t, dir); len(files) > 0 {
		t.Errorf("the raw numbers reached the disk: %v", files)
	}
}

func TestRedactionOffStoresTheTextAsSent(t *testing.T) {
	addr, stop := runDaemon(t, map[string]string{"STICKY_DATA_DIR": t.TempDir(), "STICKY_REDACT": "false"})
	defer stop()
	postJSON(t, "http://"+addr+"/v1/calls/end", `{"call_id":"c1","customer_ref":"cust_off","variables":{"summary":"card 4111111111111111"}}`)
	if _, prof := get(t, "http://"+addr+"/v1/customers/cust_off"); !strings.Contains(prof, "card 4111111111111111") {
		t.Errorf("profile %s", prof)
	}
}

func TestABadRedactionPatternStopsTheStart(t *testing.T) {
	for _, p := range []string{"(ACCT", ".*", `[\s\S]+`} {
		code, msg := command(t, map[string]string{"STICKY_DATA_DIR": t.TempDir(), "STICKY_REDACT_PATTERNS": p})
		if code != 2 || !strings.Contains(msg, "STICKY_REDACT_PATTERNS (redaction.patterns[0])") {
			t.Errorf("pattern %q: exit %d %q", p, code, msg)
		}
		code, msg = command(t, map[string]string{"STICKY_DATA_DIR": t.TempDir(), "STICKY_REDACT_PATTERNS": p}, "redact")
		if code != 2 || !strings.Contains(msg, "STICKY_REDACT_PATTERNS") {
			t.Errorf("redact with pattern %q: exit %d %q", p, code, msg)
		}
	}
}

// A cluster node's store is a copy of the shared stream: the sweep
// refuses it rather than make one copy differ, and changes nothing.
func TestRedactRefusesAClusterNodesStore(t *testing.T) {
	dir := t.TempDir()
	plantStore(t, dir, 1)
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Txn) error { return tx.PutMemory("memory-1") }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, env := range []map[string]string{{"STICKY_DATA_DIR": dir}, {"STICKY_DATA_DIR": t.TempDir(), "STICKY_CLUSTER": "main"}} {
		if code, msg := command(t, env, "redact"); code != 2 || !strings.Contains(msg, "shared memory") || strings.Contains(msg, "done:") {
			t.Errorf("%v: exit %d %s", env, code, msg)
		}
	}
	if len(onDisk(t, dir)) == 0 {
		t.Error("the refused sweep changed the store")
	}
}
