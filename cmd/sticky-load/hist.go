package main

import (
	"math/bits"
	"time"
)

// Histogram counts latencies in microseconds with at most 0.2% error:
// below 1024 µs every value has its own bucket, above that each power of
// two is split in 512. It needs no allocation per sample, so a long soak
// costs the generator a fixed ~30 KiB per histogram.
type Histogram struct {
	counts [1024 + 54*512]int64
	n      int64
	max    int64
	sum    int64
}

func bucketOf(us int64) int {
	if us < 1024 {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	shift := bits.Len64(uint64(us)) - 10 // 1.. ; us>>shift is in [512, 1024)
	return 1024 + (shift-1)*512 + int(us>>shift) - 512
}

// upper is the highest value a bucket holds.
func upper(b int) int64 {
	if b < 1024 {
		return int64(b)
	}
	shift := (b-1024)/512 + 1
	base := int64((b-1024)%512 + 512)
	return (base+1)<<shift - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(us)]++
	h.n++
	h.sum += us
	if us > h.max {
		h.max = us
	}
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of samples.
func (h *Histogram) Count() int64 { return h.n }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}

// Quantile is the smallest latency that q of the samples do not exceed
// (rounded up to its bucket), 0 with no samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen int64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(upper(b), h.max)) * time.Microsecond
		}
	}
	return h.Max()
}

// Above counts the samples of at least d (to bucket precision).
func (h *Histogram) Above(d time.Duration) int64 {
	var n int64
	for b := bucketOf(d.Microseconds()); b < len(h.counts); b++ {
		n += h.counts[b]
	}
	return n
}
