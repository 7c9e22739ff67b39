// Command ari-bridge runs Sticky attached to Asterisk through ARI (Stasis
// mode, observe mode, or both).
package main

import (
	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/adapters/asterisk"
	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/cmd/internal/daemon"
)

func main() {
	daemon.Main("ari-bridge", attach)
}

func attach(d daemon.Deps) (daemon.PBX, string, error) {
	c := d.Config.ARI
	if c.User == "" || c.Password == "" {
		return nil, "STICKY_ARI_USER and STICKY_ARI_PASSWORD are not set", nil
	}
	rules := make([]agentmap.Rule, len(c.Agents))
	for i, r := range c.Agents {
		rules[i] = agentmap.Rule{Pattern: r.Pattern, Agent: r.Agent}
	}
	b, err := asterisk.New(asterisk.Options{
		URL: c.URL, WSURL: c.WSURL, User: c.User, Password: c.Password,
		App: c.App, Mode: c.Mode, Budget: c.Budget, Agents: rules,
		Calls: d.Calls, Popper: d.Popper, Logger: d.Logger, Count: d.Count,
	})
	if err != nil {
		return nil, "", &config.Error{Setting: "ari", Problem: err.Error()}
	}
	return b, "", nil
}
