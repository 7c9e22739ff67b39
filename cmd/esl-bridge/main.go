// Command esl-bridge runs Sticky attached to FreeSWITCH through the event socket.
package main

import (
	"github.com/sticky-cc/sticky/cmd/internal/daemon"
)

func main() {
	daemon.Main("esl-bridge", attach)
}

func attach(d daemon.Deps) (daemon.PBX, string, error) {
	return nil, "the event socket attachment is not wired yet", nil
}
