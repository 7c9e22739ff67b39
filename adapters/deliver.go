package adapters

import (
	"net/http"

	"github.com/sticky-cc/sticky/core"
)

// deliver applies one webhook's end. Webhook systems redeliver (timeouts,
// retries) and also send later messages of the same thread or updates of
// the same ticket under the same interaction id, so:
//
//   - the first delivery is a plain End;
//   - an identical redelivery of it gets the core's own idempotent answer
//     (same body, same result, nothing written);
//   - a different delivery for an interaction that has ended (409 from a
//     plain End) is applied with Merge: it updates the interaction;
//   - a redelivery of such a later message is recognised by the core too:
//     an ended call keeps the fingerprints of the reports merged into it,
//     so it is answered without writing, also after a restart, and two
//     concurrent redeliveries cannot both merge (the second one's
//     transaction conflicts, re-runs and finds the fingerprint).
func (h *handler) deliver(r *http.Request, req core.EndRequest) (*core.EndResult, bool, error) {
	ctx := r.Context()
	res, err := h.calls.End(ctx, req)
	merged := false
	if core.ErrorCode(err) == core.CodeConflict {
		req.Merge, merged = true, true
		res, err = h.calls.End(ctx, req)
	}
	if err != nil {
		return nil, merged, err
	}
	return res, merged, nil
}
