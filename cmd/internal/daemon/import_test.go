package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
)

// runImportCmd runs "ari-bridge import" with args against dataDir.
func runImportCmd(t *testing.T, ctx context.Context, dataDir string, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	env := map[string]string{"STICKY_DATA_DIR": dataDir}
	code := Command(ctx, "ari-bridge", append([]string{"import"}, args...), func(k string) string { return env[k] }, &bytes.Buffer{}, &stderr, nil)
	return code, stderr.String()
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "import", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func digest(t *testing.T, dir string) (string, int) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, n, err := db.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	return d, n
}

func withEngine(t *testing.T, dir string, fn func(e *core.Engine)) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fn(core.New(core.Options{Store: db}))
}

func TestImportCSVThenRerunChangesNothing(t *testing.T) {
	ctx := context.Background()
	file, data := fixture(t, "customers.csv"), t.TempDir()
	code, out := runImportCmd(t, ctx, data, file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if !strings.Contains(out, "8 rows") || !strings.Contains(out, "4 imported, 0 updated, 0 unchanged, 4 rejected") {
		t.Fatalf("summary: %s", out)
	}
	for _, leak := range []string{"Ann", "ann@", "555", "4111", "not a number", "eve@"} {
		if strings.Contains(out, leak) {
			t.Errorf("the output holds customer data (%q): %s", leak, out)
		}
	}
	rejects, err := os.ReadFile(file + ".rejects")
	if err != nil {
		t.Fatal(err)
	}
	want := "line,reason\n4,phone 1 is not a phone number\n6,\"no identifier: give at least one of customer_ref, phone, email, customer_id, account_number\"\n" +
		"7,email 1 is not an email address\n9,\"has 5 fields, the header has 8\"\n"
	if string(rejects) != want {
		t.Errorf("rejects file:\n%s\nwant:\n%s", rejects, want)
	}
	withEngine(t, data, func(e *core.Engine) {
		st, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155552104"}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.Customer(ctx, st.CustomerRef, 0)
		if err != nil {
			t.Fatal(err)
		}
		if p.Variables["name"].Value != "Dee, Jr." || p.Variables["plan"].Value != "gold" || len(p.OpenIntents) != 2 {
			t.Fatalf("Dee by her second number: %+v", p)
		}
		// Fay's plan held a card number: redacted as an end's would be.
		st, _ = e.Start(ctx, core.StartRequest{CallID: "c2", Hints: core.Hints{ANI: "+14155552107"}})
		if v := st.Variables["plan"].Value; strings.Contains(v, "4111 1111") || v == "" {
			t.Fatalf("Fay's plan: %q", v)
		}
	})
	// The starts above wrote call records; the rerun is compared with that.
	before, _ := digest(t, data)
	code, out = runImportCmd(t, ctx, data, file)
	if code != 0 || !strings.Contains(out, "0 imported, 0 updated, 4 unchanged, 4 rejected") {
		t.Fatalf("rerun: exit %d: %s", code, out)
	}
	if after, _ := digest(t, data); after != before {
		t.Fatal("the rerun changed the store")
	}

	// A changed row updates its customer.
	b, _ := os.ReadFile(file)
	changed := filepath.Join(t.TempDir(), "changed.csv")
	os.WriteFile(changed, bytes.Replace(b, []byte("C-1002,Bob Stone,415-555-2101,,Bob@example.test,A-2,silver"), []byte("C-1002,Bob Stone,415-555-2101,415-555-2199,Bob@example.test,A-2,gold"), 1), 0o600)
	code, out = runImportCmd(t, ctx, data, changed)
	if code != 0 || !strings.Contains(out, "0 imported, 1 updated, 3 unchanged") {
		t.Fatalf("changed file: exit %d: %s", code, out)
	}
	withEngine(t, data, func(e *core.Engine) {
		st, err := e.Start(ctx, core.StartRequest{CallID: "c3", Hints: core.Hints{ANI: "+14155552199"}})
		if err != nil || st.Variables["plan"].Value != "gold" || st.Variables["name"].Value != "Bob Stone" {
			t.Fatalf("Bob after the update: %+v %v", st, err)
		}
	})
}

func TestImportJSONLines(t *testing.T) {
	ctx := context.Background()
	file, data := fixture(t, "customers.jsonl"), t.TempDir()
	rejects := filepath.Join(t.TempDir(), "out.rejects")
	code, out := runImportCmd(t, ctx, data, file, "-rejects", rejects)
	if code != 0 || !strings.Contains(out, "3 imported, 0 updated, 0 unchanged, 5 rejected") {
		t.Fatalf("exit %d: %s", code, out)
	}
	got, _ := os.ReadFile(rejects)
	want := "line,reason\n3,phone 1 is not a phone number\n4,email 1 is not an email address\n5,not valid JSON (at byte 15)\n" +
		"6,\"no identifier: give at least one of customer_ref, phone, email, customer_id, account_number\"\n" +
		"8,\"variable nested is not a string, number or boolean\"\n"
	if string(got) != want {
		t.Errorf("rejects:\n%s", got)
	}
	withEngine(t, data, func(e *core.Engine) {
		p, err := e.Customer(ctx, "cust_crm_1", 0)
		if err != nil || p.Variables["seats"].Value != "3" || len(p.Identifiers) != 4 || len(p.OpenIntents) != 1 {
			t.Fatalf("Hal: %+v %v", p, err)
		}
		st, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ExternalIDs: map[string]string{"email": "ida@work.test"}}})
		if err != nil || st.Variables["tier"].Value != "vip" || st.Variables["name"].Value != "Ida" {
			t.Fatalf("Ida: %+v %v", st, err)
		}
	})
}

// Killed midway (the context ends after two batches), the import resumes
// after the last committed batch and ends with the same store as one
// uninterrupted run, and the same rejects file.
func TestImportResumesAfterAKill(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "big.csv")
	var b strings.Builder
	b.WriteString("id,name,phone,email\n")
	for i := range 50 {
		phone := fmt.Sprintf("+1415555%04d", i)
		if i%7 == 3 {
			phone = "nope"
		}
		fmt.Fprintf(&b, "K-%d,Name %d,%s,k%d@example.test\n", i, i, phone, i)
	}
	os.WriteFile(file, []byte(b.String()), 0o600)

	fixed := func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }
	run := func(ctx context.Context, data string, hook func(int), args ...string) (int, string) {
		cfg, o := importConfig(t, data, append([]string{file, "-batch", "8"}, args...)...)
		o.afterBatch, o.now = hook, fixed
		var stderr bytes.Buffer
		code := runImport(ctx, "ari-bridge import", cfg, o, &stderr)
		return code, stderr.String()
	}
	whole := t.TempDir()
	if code, out := run(context.Background(), whole, nil, "-rejects", filepath.Join(dir, "whole.rejects")); code != 0 {
		t.Fatal(out)
	}
	wantDigest, _ := digest(t, whole)
	wantRejects, _ := os.ReadFile(filepath.Join(dir, "whole.rejects"))

	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	code, out := run(ctx, data, func(n int) {
		if n == 2 {
			cancel()
		}
	})
	if code != 1 || !strings.Contains(out, "run it again to resume") {
		t.Fatalf("killed run: exit %d: %s", code, out)
	}
	if _, n := digest(t, data); n == 0 {
		t.Fatal("nothing was committed before the kill")
	}
	code, out = run(context.Background(), data, nil)
	if code != 0 || !strings.Contains(out, "resuming") || !strings.Contains(out, "after line 17 (16 rows done before") {
		t.Fatalf("resumed run: exit %d: %s", code, out)
	}
	if !strings.Contains(out, "50 rows") || !strings.Contains(out, "43 imported, 0 updated, 0 unchanged, 7 rejected") {
		t.Fatalf("summary over both runs: %s", out)
	}
	if got, _ := digest(t, data); got != wantDigest {
		t.Fatal("the resumed import differs from an uninterrupted one")
	}
	if got, _ := os.ReadFile(file + ".rejects"); !bytes.Equal(got, wantRejects) {
		t.Fatalf("rejects after resuming:\n%s\nwant:\n%s", got, wantRejects)
	}
	// The finished import forgot its place: a third run reads it all and changes nothing.
	code, out = run(context.Background(), data, nil)
	if code != 0 || strings.Contains(out, "resuming") || !strings.Contains(out, "0 imported, 0 updated, 43 unchanged") {
		t.Fatalf("third run: %s", out)
	}
	if got, _ := digest(t, data); got != wantDigest {
		t.Fatal("the third run changed the store")
	}
}

func importConfig(t testing.TB, data string, args ...string) (config.Config, importOptions) {
	t.Helper()
	o, rest, err := parseImportFlags(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("test", append(rest, "-data-dir", data), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, o
}

// Bad input: a clear message naming the line or the flag, exit code 2,
// and nothing written (no store, no rejects file).
func TestImportBadInput(t *testing.T) {
	csvFile := fixture(t, "customers.csv")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"binary", []string{fixture(t, "archive.zip")}, "line 1: the file is binary"},
		{"prose", []string{fixture(t, "prose.txt")}, "line 1: neither JSON lines nor a CSV header naming an identifier column"},
		{"unreadable", []string{filepath.Join(t.TempDir(), "missing.csv")}, "cannot read"},
		{"unknown column", []string{csvFile, "-map", `phone=Mobile,email="E-Mail Adress"`}, `-map email=E-Mail Adress: the file has no column "E-Mail Adress"`},
		{"unknown field", []string{csvFile, "-map", "telephone=Mobile"}, `-map "telephone=Mobile": unknown field "telephone"`},
		{"unknown skip", []string{csvFile, "-skip", "Fax"}, `-skip Fax: the file has no column "Fax"`},
		{"bad format", []string{csvFile, "-format", "xml"}, `-format "xml": must be csv or jsonl`},
		{"jsonl forced on csv", []string{csvFile, "-format", "jsonl"}, "line 1: neither JSON lines"},
		{"no file", nil, "give the file to import"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			code, out := runImportCmd(t, context.Background(), data, c.args...)
			if code != 2 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, %q; want 2 and %q", code, out, c.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the store was created")
			}
			if len(c.args) > 0 {
				if _, err := os.Stat(c.args[0] + ".rejects"); !os.IsNotExist(err) {
					t.Errorf("a rejects file was written")
				}
			}
		})
	}
}

// -map chooses the columns of a field; the aliases of that field are then
// left out, and the other columns still map by their names.
func TestImportMapOverridesAliases(t *testing.T) {
	ctx := context.Background()
	file, data := fixture(t, "customers.csv"), t.TempDir()
	code, out := runImportCmd(t, ctx, data, file, "-map", `phone="Work Phone",var.tier=Plan`, "-skip", "Open Intents")
	if code != 0 {
		t.Fatal(out)
	}
	withEngine(t, data, func(e *core.Engine) {
		st, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+442079460958"}})
		if err != nil {
			t.Fatal(err)
		}
		if st.Variables["tier"].Value != "gold" || st.Variables["name"].Value != "Ann Lee" || len(st.OpenIntents) != 0 {
			t.Fatalf("%+v", st)
		}
		if r, _ := e.Start(ctx, core.StartRequest{CallID: "c2", Hints: core.Hints{ANI: "+14155552100"}}); r.CustomerRef == st.CustomerRef {
			t.Fatal("the Mobile column was imported although -map chose Work Phone")
		}
	})
}

// With -url the subcommand imports through a running node's API (a
// cluster node's only way), resumes from the place the node recorded, and
// needs an admin key.
func TestImportThroughTheAPI(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eng := core.New(core.Options{Store: db})
	srv := httptest.NewServer(api.New(api.Options{Engine: eng, NamedKeys: []api.Key{
		{Name: "ops", Scopes: []api.Scope{api.ScopeAdmin}, Secret: "admin-secret-123"},
		{Name: "pbx", Scopes: []api.Scope{api.ScopeCalls}, Secret: "calls-secret-123"}}}))
	defer srv.Close()
	file := fixture(t, "customers.jsonl")
	data := filepath.Join(t.TempDir(), "unused")

	code, out := runImportCmd(t, context.Background(), data, file, "-url", srv.URL, "-key", "calls-secret-123")
	if code != 1 || !strings.Contains(out, "403") {
		t.Fatalf("a key without admin: exit %d: %s", code, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg, o := importConfig(t, data, file, "-url", srv.URL, "-key", "admin-secret-123", "-batch", "2")
	o.afterBatch = func(n int) {
		if n == 1 {
			cancel()
		}
	}
	var stderr bytes.Buffer
	if code := runImport(ctx, "ari-bridge import", cfg, o, &stderr); code != 1 {
		t.Fatalf("killed: exit %d: %s", code, stderr.String())
	}
	code, out = runImportCmd(t, context.Background(), data, file, "-url", srv.URL, "-key", "admin-secret-123", "-batch", "2")
	if code != 0 || !strings.Contains(out, "resuming") || !strings.Contains(out, "3 imported, 0 updated, 0 unchanged, 5 rejected") {
		t.Fatalf("resumed: exit %d: %s", code, out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Error("the -url import opened a local store")
	}
	if p, err := eng.Customer(context.Background(), "cust_crm_1", 0); err != nil || p.Variables["seats"].Value != "3" {
		t.Fatalf("%+v %v", p, err)
	}
}

// A cluster node's store is never written directly: the subcommand says
// to use -url, and writes nothing.
func TestImportRefusesAClusterNodesStore(t *testing.T) {
	file, data := fixture(t, "customers.csv"), filepath.Join(t.TempDir(), "data")
	var stderr bytes.Buffer
	env := map[string]string{"STICKY_DATA_DIR": data, "STICKY_CLUSTER": "prod"}
	code := Command(context.Background(), "ari-bridge", []string{"import", file}, func(k string) string { return env[k] }, io.Discard, &stderr, nil)
	if code != 2 || !strings.Contains(stderr.String(), "-url") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Error("the store was created")
	}
}
