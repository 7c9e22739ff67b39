package asterisk

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// fixture reads a capture from testdata/asterisk-22 (the team's
// shared/fixtures, copied byte for byte): one event per line, as Asterisk
// sent it.
func fixture(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "asterisk-22", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

var (
	idRE   = regexp.MustCompile(`"(\d{10})\.(\d+)"`)
	nameRE = regexp.MustCompile(`-0000([0-9a-f]{4})([;"])`)
)

// variant rewrites a capture into call number n: channel ids, channel
// names and the caller's number become unique, everything else is the
// captured bytes.
func variant(lines []string, n int, ani string) []string {
	out := make([]string, len(lines))
	var oldANI string
	for _, l := range lines {
		if i := strings.Index(l, `"caller": {"name": `); i >= 0 {
			var ev struct {
				Channel *struct {
					Caller struct{ Number string } `json:"caller"`
				} `json:"channel"`
			}
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Channel != nil && strings.HasPrefix(ev.Channel.Caller.Number, "+1") {
				oldANI = ev.Channel.Caller.Number
				break
			}
		}
	}
	for i, l := range lines {
		l = idRE.ReplaceAllString(l, fmt.Sprintf(`"%d.$2"`, 3000000000+n))
		l = nameRE.ReplaceAllString(l, fmt.Sprintf("-%04x$1$2", n&0xffff))
		if oldANI != "" && ani != "" {
			l = strings.ReplaceAll(l, oldANI, ani)
		}
		out[i] = l
	}
	return out
}

// eventType is the "type" of a captured line.
func eventType(line string) string {
	var ev struct{ Type string }
	_ = json.Unmarshal([]byte(line), &ev)
	return ev.Type
}

// until splits lines after the first one for which f holds.
func until(lines []string, f func(string) bool) (head, tail []string) {
	for i, l := range lines {
		if f(l) {
			return lines[:i+1], lines[i+1:]
		}
	}
	return lines, nil
}

// fakeAsterisk speaks the ARI routes the bridge uses and serves
// /ari/events; tests push captured events through it.
type fakeAsterisk struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	entity  string
	conns   []*websocket.Conn
	queries []string
	subs    []string // application subscriptions
	// subsAtContinue: the subscriptions made when each channel was continued.
	subsAtContinue map[string][]string
	// holdSubs, when set, holds every subscription's answer until it is
	// closed; subsWaiting counts the ones held now.
	holdSubs    chan struct{}
	subsWaiting int
	vars        map[string][][2]string // channel → variables set, in order
	continued   map[string]bool
	gets        int             // GET .../variable requests
	dials       int             // TCP connections accepted
	live        map[string]bool // channels Asterisk has now
	lists       int             // GET /ari/channels requests answered
	changed     *sync.Cond

	connected chan *websocket.Conn
}

func newFake(t testing.TB) *fakeAsterisk {
	f := &fakeAsterisk{t: t, entity: "02:fc:00:00:00:01", vars: map[string][][2]string{},
		continued: map[string]bool{}, subsAtContinue: map[string][]string{}, live: map[string]bool{}, connected: make(chan *websocket.Conn, 16)}
	f.changed = sync.NewCond(&f.mu)
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "sticky" || p != "secret" {
				http.Error(w, `{"message":"Authentication required"}`, http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /ari/asterisk/info", auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		entity := f.entity
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"build":{"os":"Linux"},"system":{"version":"22.10.1","entity_id":%q},`+
			`"config":{"name":"","default_language":"en","setid":{"user":"","group":""}},`+
			`"status":{"startup_time":"2026-11-24T19:00:00.000+0000","last_reload_time":"2026-11-24T19:00:00.000+0000"}}`, entity)
	}))
	mux.HandleFunc("POST /ari/channels/{id}/variable", auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Variable, Value string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Variable == "" {
			http.Error(w, `{"message":"Variable name is required"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("id")
		if f.continued[id] {
			http.Error(w, `{"message":"Channel not in Stasis application"}`, http.StatusConflict)
			return
		}
		f.vars[id] = append(f.vars[id], [2]string{body.Variable, body.Value})
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /ari/channels/{id}/variable", auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gets++
		for _, kv := range f.vars[r.PathValue("id")] {
			if kv[0] == r.URL.Query().Get("variable") {
				fmt.Fprintf(w, `{"value":%q}`, kv[1])
				return
			}
		}
		http.Error(w, `{"message":"Provided variable was not found"}`, http.StatusNotFound)
	}))
	mux.HandleFunc("POST /ari/channels/{id}/continue", auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("id")
		f.continued[id] = true
		f.subsAtContinue[id] = slices.Clone(f.subs)
		f.changed.Broadcast()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /ari/channels", auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []map[string]string
		for id := range f.live {
			out = append(out, map[string]string{"id": id})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
		f.lists++
		f.changed.Broadcast()
	}))
	mux.HandleFunc("POST /ari/applications/{app}/subscription", auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ EventSource string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		hold := f.holdSubs
		f.subsWaiting++
		f.changed.Broadcast()
		f.mu.Unlock()
		if hold != nil {
			<-hold
		}
		f.mu.Lock()
		f.subsWaiting--
		f.subs = append(f.subs, body.EventSource) // answered: in place
		f.mu.Unlock()
		fmt.Fprintf(w, `{"name":%q,"channel_ids":[],"bridge_ids":[],"endpoint_ids":[],"device_names":[]}`, r.PathValue("app"))
	}))
	ws := websocket.Server{
		Handshake: func(c *websocket.Config, r *http.Request) error {
			if u, p, ok := r.BasicAuth(); !ok || u != "sticky" || p != "secret" {
				return fmt.Errorf("unauthorised")
			}
			return nil
		},
		Handler: func(c *websocket.Conn) {
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.queries = append(f.queries, c.Request().URL.RawQuery)
			f.mu.Unlock()
			f.connected <- c
			// Hold the connection until the client or the test closes it.
			var discard []byte
			for websocket.Message.Receive(c, &discard) == nil {
			}
		},
	}
	mux.Handle("GET /ari/events", ws)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.dials++
			f.mu.Unlock()
		}
	}
	f.srv.Start()
	t.Cleanup(f.close)
	return f
}

func (f *fakeAsterisk) url() string { return f.srv.URL + "/ari" }

func (f *fakeAsterisk) close() {
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// accept waits for the bridge's websocket.
func (f *fakeAsterisk) accept() *websocket.Conn {
	f.t.Helper()
	select {
	case c := <-f.connected:
		return c
	case <-time.After(10 * time.Second):
		f.t.Fatal("the bridge never connected its events websocket")
		return nil
	}
}

// play sends captured lines over c, tracking which channels exist.
func (f *fakeAsterisk) play(c *websocket.Conn, lines ...string) {
	f.t.Helper()
	for _, l := range lines {
		var ev struct {
			Type    string
			Channel *struct{ ID string } `json:"channel"`
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Channel != nil {
			f.mu.Lock()
			switch ev.Type {
			case "ChannelCreated":
				f.live[ev.Channel.ID] = true
			case "ChannelDestroyed":
				delete(f.live, ev.Channel.ID)
			default:
				if _, ok := f.live[ev.Channel.ID]; !ok && ev.Type != "" {
					f.live[ev.Channel.ID] = true
				}
			}
			f.mu.Unlock()
		}
		if err := websocket.Message.Send(c, l); err != nil {
			f.t.Errorf("sending event: %v", err)
			return
		}
	}
}

// restart drops every connection and channel, as a restarting Asterisk does.
func (f *fakeAsterisk) restart(entity string) {
	f.mu.Lock()
	f.entity = entity
	f.live = map[string]bool{}
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// waitContinued waits until the channel was continued.
// listCount is how many channel lists the fake has answered.
func (f *fakeAsterisk) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// waitLists waits until the fake has answered more than n channel lists
// (the bridge lists channels after it reconnects).
func (f *fakeAsterisk) waitLists(n int) {
	f.t.Helper()
	done := make(chan struct{})
	go func() {
		f.mu.Lock()
		for f.lists <= n {
			f.changed.Wait()
		}
		f.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		f.mu.Lock()
		f.lists = n + 1 // release the waiter
		f.changed.Broadcast()
		f.mu.Unlock()
		f.t.Fatalf("the bridge never listed channels after reconnecting")
	}
}

func (f *fakeAsterisk) waitContinued(id string) {
	f.t.Helper()
	done := make(chan struct{})
	go func() {
		f.mu.Lock()
		for !f.continued[id] {
			f.changed.Wait()
		}
		f.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		f.mu.Lock()
		f.continued[id] = true // release the waiter
		f.changed.Broadcast()
		f.mu.Unlock()
		f.t.Fatalf("channel %s was never continued", id)
	}
}

// holdSubscriptions makes the fake hold subscriptions' answers until the
// returned release is called (also at the end of the test).
func (f *fakeAsterisk) holdSubscriptions(t testing.TB) (release func()) {
	hold := make(chan struct{})
	f.mu.Lock()
	f.holdSubs = hold
	f.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release)
	return release
}

func (f *fakeAsterisk) varsOf(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for _, kv := range f.vars[id] {
		m[kv[0]] = kv[1]
	}
	return m
}
