package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
)

// httpImporter sends batches to a running node's POST /v1/import. On a
// cluster node each batch is then one entry of the shared log, applied by
// every node.
type httpImporter struct {
	base, key string
	client    *http.Client
}

func (h *httpImporter) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.key != "" {
		req.Header.Set("Authorization", "Bearer "+h.key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Message != "" {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, h.base+"/v1/import", resp.StatusCode, eb.Message)
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, h.base+"/v1/import", resp.Status)
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

func (h *httpImporter) progress(source string) (store.ImportProgress, bool, error) {
	var p store.ImportProgress
	code, err := h.do(context.Background(), "GET", "/v1/import/"+url.PathEscape(source), nil, &p)
	if code == http.StatusNotFound {
		return p, false, nil
	}
	return p, err == nil, err
}

// forget has nothing to do: the first batch of a run that starts over
// lies before the recorded place, and the node counts afresh from it.
func (h *httpImporter) forget(string) error { return nil }

func (h *httpImporter) send(ctx context.Context, rows []core.ImportRow, p *store.ImportProgress) ([]core.ImportResult, error) {
	body, err := json.Marshal(api.ImportBatch{Source: p.Source, Offset: p.Offset, Line: p.Line, RowsDone: p.Rows,
		RejectsAt: p.RejectsAt, Done: p.Done, Rows: rows})
	if err != nil {
		return nil, err
	}
	// A node that is briefly unavailable (the shared memory electing a
	// leader) is retried; importing the same rows again is harmless.
	for attempt := 1; ; attempt++ {
		var reply api.ImportReply
		code, err := h.do(ctx, "POST", "/v1/import", body, &reply)
		if err == nil {
			if len(reply.Results) != len(rows) {
				return nil, fmt.Errorf("the node answered %d results for %d rows", len(reply.Results), len(rows))
			}
			return reply.Results, nil
		}
		if code != 0 && code != http.StatusServiceUnavailable || attempt == 4 || errors.Is(ctx.Err(), context.Canceled) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}
