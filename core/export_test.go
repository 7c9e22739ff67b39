package core

import (
	"context"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// NormalizeEmailSlow is the full RFC 5322 path of NormalizeEmail, exported
// to the tests so the fuzzer can check that the fast path agrees with it.
var NormalizeEmailSlow = normalizeEmailSlow

// LegacyStartFingerprint is the start fingerprint of calls started before
// 2026-12, for the test that retries such a call.
var LegacyStartFingerprint = legacyStartFingerprint

// ImportPhone is the import's shortcut for North American numbers.
var ImportPhone = importPhone

// StatsFromRecords is Stats computed from the records themselves, never
// from the statistics index, for the tests that hold one against the other.
func (e *Engine) StatsFromRecords(ctx context.Context, from, to time.Time, switchWindow time.Duration) (*Stats, error) {
	if switchWindow <= 0 {
		switchWindow = defaultSwitchWindow
	}
	return e.statsFromRecords(ctx, from, to, switchWindow, nil)
}

// StatsIndexed says whether Stats reads the statistics index.
func (e *Engine) StatsIndexed() (bool, error) { return e.statsIndexed() }

// BackgroundStatsPace is BackgroundStats with the test's own pace.
func (e *Engine) BackgroundStatsPace(ctx context.Context, from, to time.Time, pace store.Pace) (*Stats, error) {
	return e.stats(ctx, from, to, 0, pace)
}
