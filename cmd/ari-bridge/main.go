// Command ari-bridge runs Sticky attached to Asterisk through ARI.
package main

import (
	"github.com/sticky-cc/sticky/cmd/internal/daemon"
)

func main() {
	daemon.Main("ari-bridge", attach)
}

func attach(d daemon.Deps) (daemon.PBX, string, error) {
	return nil, "the ARI attachment is not wired yet", nil
}
