package core

// NormalizeEmailSlow is the full RFC 5322 path of NormalizeEmail, exported
// to the tests so the fuzzer can check that the fast path agrees with it.
var NormalizeEmailSlow = normalizeEmailSlow

// LegacyStartFingerprint is the start fingerprint of calls started before
// 2026-12, for the test that retries such a call.
var LegacyStartFingerprint = legacyStartFingerprint

// ImportPhone is the import's shortcut for North American numbers.
var ImportPhone = importPhone
