package core

import (
	"reflect"
	"testing"
	"time"
)

// FuzzTallyDecode: the statistics index's values come back from disk, so
// decoding any bytes must not panic, and what decodes must encode to a
// value that decodes the same.
func FuzzTallyDecode(f *testing.F) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	w := walk{Gen: statsGen(30 * 24 * time.Hour), N: 3, Last: at, LastChannel: "chat", LastID: "c1",
		Intents: map[string]*walkIntent{"refund": {Open: true, Last: at, Switched: at.Add(-time.Hour)}}}
	f.Add(w.encode())
	f.Add(contactClass{Channel: "phone", From: "chat", Intent: true, Repeat: true, Resolved: true, ToResolution: time.Hour}.encode())
	f.Add(startSummary{"high", "reuse"}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var w walk
		if w.decode(b) == nil {
			var again walk
			if err := again.decode(w.encode()); err != nil || !reflect.DeepEqual(w, again) {
				t.Fatalf("walk %+v came back as %+v (%v)", w, again, err)
			}
		}
		var cl contactClass
		if cl.decode(b) == nil {
			var again contactClass
			if err := again.decode(cl.encode()); err != nil || again != cl {
				t.Fatalf("class %+v came back as %+v (%v)", cl, again, err)
			}
		}
		var st startSummary
		st.decode(b)
	})
}
