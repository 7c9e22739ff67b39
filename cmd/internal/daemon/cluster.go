package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sticky-cc/sticky/adapters/cluster"
	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
)

// ClusterInfo is the answer of GET /v1/cluster: how far this node has
// applied the shared memory, with digests that nodes holding the same
// memory have alike.
type ClusterInfo struct {
	Cluster         string `json:"cluster"`
	Mode            string `json:"mode"` // standalone or cluster
	Node            string `json:"node"`
	AppliedSequence uint64 `json:"applied_sequence"`
	StreamSequence  uint64 `json:"stream_sequence"`
	Lag             uint64 `json:"lag"`
	// Digest is chained over every entry applied and its outcome.
	Digest   string `json:"digest"`
	Writable bool   `json:"writable"`
	Ready    bool   `json:"ready"`
	Detail   string `json:"detail,omitempty"`
	// StateDigest hashes the whole store (only with ?state=1: it reads
	// every record).
	StateDigest  string `json:"state_digest,omitempty"`
	StateRecords int    `json:"state_records,omitempty"`
}

func nodeName(cfg config.Config) string {
	if cfg.NATS.ServerName != "" {
		return cfg.NATS.ServerName
	}
	h, _ := os.Hostname()
	return h
}

// newMemory builds the shared memory of a clustered node (nil standalone).
// It is connected to NATS later, by joinMemory, once the screen-pop
// service's connection exists.
func newMemory(cfg config.Config, key []byte, log interface {
	Info(string, ...any)
}) (*cluster.Memory, error) {
	if cfg.Cluster.Name == "" {
		return nil, nil
	}
	mem, err := cluster.New(cluster.Options{Name: cfg.Cluster.Name, Replicas: cfg.Cluster.Replicas,
		Key: key, MaxLag: uint64(cfg.Cluster.MaxLag),
		SnapshotEvery: cfg.Cluster.SnapshotEvery, KeepEntries: uint64(max(cfg.Cluster.KeepEntries, 1))})
	if err != nil {
		return nil, &config.Error{Setting: "STICKY_CLUSTER (cluster.name)", Problem: err.Error()}
	}
	log.Info("clustered: changes go through the shared memory", "cluster", cfg.Cluster.Name, "replicas", cfg.Cluster.Replicas)
	return mem, nil
}

// joinMemory connects the memory, checks that this node's store belongs to
// it, and returns the follower to run.
func joinMemory(ctx context.Context, cfg config.Config, mem *cluster.Memory, e *core.Engine, pops *popService) (func(context.Context) error, error) {
	if pops == nil || pops.conn == nil {
		return nil, &config.Error{Setting: "STICKY_CLUSTER (cluster.name)", Problem: "a cluster needs NATS"}
	}
	if have, err := e.BoundMemory(); err != nil {
		return nil, err
	} else if have != "" && !strings.HasPrefix(have, cfg.Cluster.Name+"@") {
		return nil, &config.Error{Setting: "STICKY_CLUSTER (cluster.name)",
			Problem: fmt.Sprintf("the data dir belongs to the shared memory %q, not %q", strings.SplitN(have, "@", 2)[0], cfg.Cluster.Name)}
	}
	if err := mem.Open(ctx, pops.conn); err != nil {
		return nil, &config.Error{Setting: "STICKY_CLUSTER (cluster.name)", Problem: err.Error()}
	}
	if err := e.Bind(mem.ID()); err != nil {
		return nil, &config.Error{Setting: "STICKY_DATA_DIR (data_dir)", Problem: err.Error()}
	}
	return func(ctx context.Context) error { return mem.Run(ctx, e) }, nil
}

func clusterInfo(cfg config.Config, mem *cluster.Memory) ClusterInfo {
	if mem == nil {
		return ClusterInfo{Mode: "standalone", Node: nodeName(cfg), Writable: true, Ready: true}
	}
	st := mem.Status()
	return ClusterInfo{Cluster: st.Memory, Mode: "cluster", Node: nodeName(cfg),
		AppliedSequence: st.Applied, StreamSequence: st.Last, Lag: st.Lag, Digest: st.Digest,
		Writable: st.Writable, Ready: st.Ready, Detail: st.Detail}
}

// mountCluster serves GET /v1/cluster, the readiness check and the metrics.
// The cluster status is for monitoring: a key with the read scope may see
// it, no admin key is needed.
func mountCluster(cfg config.Config, mem *cluster.Memory, e *core.Engine, srv *api.Server, m *metrics) {
	srv.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := clusterInfo(cfg, mem)
		if r.URL.Query().Get("state") == "1" {
			d, n, err := e.StateDigest()
			if err != nil {
				api.WriteError(w, err)
				return
			}
			info.StateDigest, info.StateRecords = d, n
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
	}), api.ScopeRead)
	if mem == nil {
		return
	}
	srv.AddReadiness("cluster", true, func() (bool, string) {
		st := mem.Status()
		if st.Detail == "" {
			st.Detail = fmt.Sprintf("applied %d of %d", st.Applied, st.Last)
		}
		return st.Ready, st.Detail
	})
	gauge := func(name, help string, f func(cluster.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(mem.Status()) })
	}
	m.Register(gauge("sticky_cluster_lag", "Entries of the shared memory this node has not applied yet.",
		func(s cluster.Status) float64 { return float64(s.Lag) }))
	m.Register(gauge("sticky_cluster_applied_sequence", "The last entry of the shared memory this node applied.",
		func(s cluster.Status) float64 { return float64(s.Applied) }))
	m.Register(gauge("sticky_cluster_writable", "1 while the shared memory takes writes.",
		func(s cluster.Status) float64 {
			if s.Writable {
				return 1
			}
			return 0
		}))
}
