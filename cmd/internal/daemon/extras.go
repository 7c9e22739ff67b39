package daemon

import (
	"context"
	"flag"
	"log/slog"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
)

var flag_ErrHelp = flag.ErrHelp

// popService is the screen-pop side of the process.
type popService struct {
	popper core.Popper
	run    func(context.Context) error
}

// startPops starts screen-pop delivery over NATS.
func startPops(ctx context.Context, cfg config.Config, e *core.Engine, srv *api.Server, log *slog.Logger) (*popService, error) {
	return nil, nil
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
