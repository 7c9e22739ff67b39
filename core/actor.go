package core

import "context"

type actorKey struct{}

// WithActor returns ctx carrying who acts: an API key's name, an agent id.
// The engine writes it into the access log of what it reads and changes.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// ActorFrom is the actor ctx carries, or ActorSystem when none does (an
// API without keys, the engine's own work).
func ActorFrom(ctx context.Context) string {
	if name, _ := ctx.Value(actorKey{}).(string); name != "" {
		return name
	}
	return ActorSystem
}

// ActorSystem is the actor of what no key or agent did.
const ActorSystem = "system"
