package asterisk

import (
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"time"
	"unsafe"

	"github.com/CyCoreSystems/ari/v5/client/native"
)

// newARI returns ari/v5's native client for REST only: it is never
// Connect()ed (see attach).
//
// ari/v5 v5.3.1 sends REST requests through a zero http.Client: no timeout
// and http.DefaultTransport, which keeps 2 idle connections per host
// (notes A5#7). Its field is unexported, so the bridge sets it through
// reflection to a client with a timeout and a pool sized for hundreds of
// calls per second. TestRESTTimeout proves it took; if a future ari/v5
// renames the field, requests are still bounded by call's deadline.
func newARI(opts Options) *native.Client {
	c := native.New(&native.Options{
		Application: opts.App, URL: opts.URL, WebsocketURL: opts.WSURL,
		Username: opts.User, Password: opts.Password, SubscribeAll: opts.Mode != ModeStasis,
	})
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: opts.RESTTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: opts.RESTTimeout,
		TLSHandshakeTimeout:   opts.RESTTimeout,
	}
	if f := reflect.ValueOf(c).Elem().FieldByName("httpClient"); f.IsValid() && f.Type() == reflect.TypeFor[http.Client]() {
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(http.Client{Transport: draining{tr}, Timeout: opts.RESTTimeout}))
	}
	return c
}

// draining reads what is left of a response body before closing it:
// ari/v5 closes bodies it does not decode (POST .../subscription answers
// with JSON), and an unread body costs the pooled connection, so every
// such request would dial Asterisk anew.
type draining struct{ rt http.RoundTripper }

func (d draining) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.rt.RoundTrip(r)
	if err == nil {
		resp.Body = drainBody{resp.Body}
	}
	return resp, err
}

type drainBody struct{ io.ReadCloser }

func (b drainBody) Close() error {
	_, _ = io.Copy(io.Discard, io.LimitReader(b.ReadCloser, 64<<10))
	return b.ReadCloser.Close()
}

// closeIdle closes the REST connections left in the pool.
func closeIdle(c *native.Client) {
	if f := reflect.ValueOf(c).Elem().FieldByName("httpClient"); f.IsValid() && f.Type() == reflect.TypeFor[http.Client]() {
		hc := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Interface().(*http.Client)
		if d, ok := hc.Transport.(draining); ok {
			d.rt.(*http.Transport).CloseIdleConnections()
			return
		}
		hc.CloseIdleConnections()
	}
}

// call runs one ari/v5 REST request, which takes no context, so that the
// caller stops waiting when ctx ends or RESTTimeout passes; the request
// itself ends within RESTTimeout and Run waits for it.
func (b *Bridge) call(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.RESTTimeout)
	defer cancel()
	done := make(chan error, 1)
	b.rest.Add(1)
	go func() {
		defer b.rest.Done()
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goWork runs f as per-call work that Run waits for.
func (b *Bridge) goWork(f func()) {
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		f()
	}()
}
