package daemon

import (
	"context"
	"flag"
	"github.com/nats-io/nats.go"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/screenpop"
)

var flag_ErrHelp = flag.ErrHelp

// popService is the screen-pop side of the process.
type popService struct {
	popper core.Popper
	run    func(context.Context) error
	conn   *nats.Conn
}

// startPops starts screen-pop delivery over NATS (embedded or external),
// mounts the agent desktop and reports NATS in /readyz. It never waits for
// an external NATS: the service connects in the background.
func startPops(ctx context.Context, cfg config.Config, e *core.Engine, srv *api.Server, log *slog.Logger, count func(string)) (*popService, error) {
	agents := make([]screenpop.Agent, len(cfg.NATS.Agents))
	for i, a := range cfg.NATS.Agents {
		agents[i] = screenpop.Agent{ID: a.ID, Password: a.Password, Queues: a.Queues}
	}
	n := cfg.NATS
	svc, err := screenpop.Start(ctx, screenpop.Options{
		URL: n.URL, Addr: n.Addr, WSAddr: n.WSAddr, WSURL: n.DesktopWSURL, WSAllowedOrigins: n.WSAllowedOrigins,
		StoreDir:  filepath.Join(cfg.DataDir, "nats"),
		CredsFile: n.CredsFile, Token: n.Token, User: n.User, Password: n.Password,
		TLSCA: n.TLSCA, TLSCert: n.TLSCert, TLSKey: n.TLSKey,
		Retention: n.PopRetention, Agents: agents, Calls: e, Logger: log, Count: count,
		VerifyPrompts: cfg.Prompts(),
		ServerName:    n.ServerName, ClusterAddr: n.ClusterAddr, Routes: n.Routes,
		ClusterName: "sticky-" + cfg.Cluster.Name, Replicas: popReplicas(cfg),
		// One copy of a clustered memory is durable only if JetStream
		// syncs it; with more, the other copies are what keeps it.
		SyncAlways: cfg.Cluster.Name != "" && cfg.Cluster.Replicas == 1,
	})
	if err != nil {
		return nil, &config.Error{Setting: "nats", Problem: err.Error()}
	}
	if client, ws := svc.Addrs(); client != "" {
		log.Info("embedded NATS listening", "client", client, "websocket", ws, "agents", len(agents))
		if len(agents) == 0 {
			log.Warn("no agent logins configured (nats.agents or STICKY_AGENTS_FILE): the desktop cannot sign in")
		}
	} else {
		log.Info("using an external NATS", "servers", redactURL(n.URL))
	}
	srv.HandlePublic("GET /desktop/", svc.Desktop())
	srv.HandlePublic("GET /desktop", http.RedirectHandler("/desktop/", http.StatusMovedPermanently))
	srv.AddReadiness("screen-pops", true, svc.Ready)
	return &popService{popper: svc, run: svc.Run, conn: svc.Conn()}, nil
}

// popReplicas keeps the pops of a clustered node on as many servers as the
// shared memory, so that losing one server loses no pop.
func popReplicas(cfg config.Config) int {
	if cfg.Cluster.Name != "" {
		return cfg.Cluster.Replicas
	}
	return 1
}

// redactURL drops credentials from NATS server URLs before they are logged.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// mountAdapters adds the chat, email and Zendesk endpoints.
func mountAdapters(cfg config.Config, e *core.Engine, srv *api.Server, log *slog.Logger) error {
	err := adapters.Mount(srv, adapters.Options{
		Calls:         e,
		Secret:        []byte(cfg.Adapters.WebhookSecret),
		ZendeskSecret: []byte(cfg.Adapters.ZendeskSecret),
		ReplayWindow:  cfg.Adapters.ReplayWindow,
		TicketPattern: cfg.Adapters.TicketPattern,
		OwnAddresses:  cfg.Adapters.OwnAddresses,
		DefaultRegion: cfg.DefaultRegion,
		Logger:        log,
	})
	if err != nil {
		return &config.Error{Setting: "adapters", Problem: err.Error()}
	}
	return nil
}
