// Entry point of nats.bundle.js: the maintained NATS JavaScript client
// (websocket transport and JetStream), exposed to app.js as the global
// StickyNATS. Rebuild with ./build.sh after changing package.json.
export { wsconnect, headers } from "@nats-io/nats-core";
export { jetstream, DeliverPolicy } from "@nats-io/jetstream";
