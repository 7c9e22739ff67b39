// Command esl-bridge runs Sticky attached to FreeSWITCH through the event
// socket (inbound mode, and outbound mode when esl.listen_addr is set).
package main

import (
	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/adapters/freeswitch"
	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/cmd/internal/daemon"
)

func main() {
	daemon.Main("esl-bridge", attach)
}

func attach(d daemon.Deps) (daemon.PBX, string, error) {
	c := d.Config.ESL
	if c.Addr == "" && c.ListenAddr == "" {
		return nil, "neither esl.addr (inbound) nor esl.listen_addr (outbound) is set", nil
	}
	rules := make([]agentmap.Rule, len(c.Agents))
	for i, r := range c.Agents {
		rules[i] = agentmap.Rule{Pattern: r.Pattern, Agent: r.Agent}
	}
	b, err := freeswitch.New(freeswitch.Options{
		Addr: c.Addr, Password: c.Password, ListenAddr: c.ListenAddr, Budget: c.Budget,
		Agents: rules, Calls: d.Calls, Popper: d.Popper, Logger: d.Logger, Count: d.Count,
	})
	if err != nil {
		return nil, "", &config.Error{Setting: "esl", Problem: err.Error()}
	}
	return b, "", nil
}
