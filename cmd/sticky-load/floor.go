package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// FloorAnswerBytes is the size of the floor's answer, about a start's.
const FloorAnswerBytes = 1024

// floorAnswer is a JSON object of FloorAnswerBytes with a customer_ref, so
// the generator treats it as a bridge's answer.
var floorAnswer = func() []byte {
	head, tail := `{"customer_ref":"cust_floor","pad":"`, `"}`
	return []byte(head + strings.Repeat("x", FloorAnswerBytes-len(head)-len(tail)) + tail)
}()

// Floor is the floor server's handler: the least any Go HTTP service can
// do with a request (read it, answer 1 KB), so a run can tell the bridge's
// latency from what the machine, the loopback and the generator cost.
func Floor() http.Handler {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(floorAnswer)
	}
	mux.HandleFunc("POST /v1/calls/start", answer)
	mux.HandleFunc("POST /v1/calls/end", answer)
	return mux
}

// ServeFloor serves Floor on addr until ctx ends; bound receives the
// address it listens on (port 0 resolved).
func ServeFloor(ctx context.Context, addr string, bound func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The bridge's server settings, so the two differ only in the handler.
	hs := &http.Server{Handler: Floor(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	if bound != nil {
		bound(ln.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
