package api

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per principal (an API key, a webhook sender).
type Limiter struct {
	perSecond float64
	burst     int
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
}

// NewLimiter allows each principal perSecond requests, burst at once.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{perSecond: perSecond, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Allow takes a token from principal's bucket, or says how many whole
// seconds to wait before retrying.
func (l *Limiter) Allow(principal string) (retryAfter int, ok bool) {
	l.mu.Lock()
	lim := l.buckets[principal]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
		l.buckets[principal] = lim
	}
	l.mu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return 1, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return max(1, int(math.Ceil(d.Seconds()))), false
	}
	return 0, true
}

// TooManyRequests answers 429 with Retry-After.
func TooManyRequests(w http.ResponseWriter, retryAfter int) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	Fail(w, http.StatusTooManyRequests, "rate limit exceeded; retry after "+strconv.Itoa(retryAfter)+"s")
}

// ReadLimited reads at most limit bytes of body, answering 413 above it
// (and 400 when the body cannot be read); false means it has answered.
func ReadLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			Fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d KiB", limit>>10))
		} else {
			Fail(w, http.StatusBadRequest, "could not read the request body")
		}
		return nil, false
	}
	return body, true
}
