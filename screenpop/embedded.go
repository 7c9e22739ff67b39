package screenpop

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

const bridgeUser = "sticky-bridge"

// bcryptPrefix is how NATS recognises a bcrypt hash in a user's password.
var bcryptPrefix = regexp.MustCompile(`^\$2[abxy]\$\d{2}\$`)

// checkHash refuses a password that NATS would take for a bcrypt hash but
// that is not a valid one (a hash cut short when pasted, say): nobody
// could ever sign in with it, and nothing else would say why.
func checkHash(p string) error {
	if !bcryptPrefix.MatchString(p) {
		return nil
	}
	if _, err := bcrypt.Cost([]byte(p)); err != nil || len(p) != 60 {
		return fmt.Errorf("the password looks like a bcrypt hash but is not a valid one (a bcrypt hash is 60 characters)")
	}
	return nil
}

// startEmbedded runs the NATS server inside the process: JetStream on
// StoreDir, a client listener and a websocket listener, and one login per
// agent limited to that agent's own subjects. It returns the bridge's own
// login (a random password, used over an in-process pipe).
func (s *Service) startEmbedded() (*server.User, error) {
	o := s.opts
	host, port, err := listenParts(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("screenpop: NATS address %q: %w", o.Addr, err)
	}
	wsHost, wsPort, err := listenParts(o.WSAddr)
	if err != nil {
		return nil, fmt.Errorf("screenpop: NATS websocket address %q: %w", o.WSAddr, err)
	}
	for _, origin := range o.WSAllowedOrigins {
		if u, err := url.Parse(origin); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("screenpop: websocket allowed origin %q must be an absolute http(s) URL", origin)
		}
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	bridge := &server.User{Username: bridgeUser, Password: hex.EncodeToString(secret)}
	// The server keeps only a bcrypt hash of the bridge's own password, as
	// of every agent's whose agents file holds one, so NATS has no
	// plaintext password to warn about. Cost 4 is enough: the secret is 192
	// random bits, not a human's password.
	bridgeHash, err := bcrypt.GenerateFromPassword([]byte(bridge.Password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	users := []*server.User{{Username: bridgeUser, Password: string(bridgeHash)}}
	seen := map[string]string{bridgeUser: bridgeUser}
	for _, a := range o.Agents {
		if a.ID == "" || a.Password == "" {
			return nil, fmt.Errorf("screenpop: every agent needs an id and a password")
		}
		tok := Token(a.ID)
		if other, dup := seen[tok]; dup {
			return nil, fmt.Errorf("screenpop: agent %q clashes with %q (same subject token %q)", a.ID, other, tok)
		}
		seen[tok] = a.ID
		if err := checkHash(a.Password); err != nil {
			return nil, fmt.Errorf("screenpop: agent %q: %w", a.ID, err)
		}
		users = append(users, &server.User{Username: a.ID, Password: a.Password, Permissions: agentPermissions(a)})
	}
	if o.User != "" && o.Password != "" {
		if _, dup := seen[Token(o.User)]; dup {
			return nil, fmt.Errorf("screenpop: NATS user %q clashes with an agent", o.User)
		}
		if err := checkHash(o.Password); err != nil {
			return nil, fmt.Errorf("screenpop: NATS user %q: %w", o.User, err)
		}
		users = append(users, &server.User{Username: o.User, Password: o.Password})
	}
	if o.Token != "" || o.CredsFile != "" {
		s.log.Warn("NATS token and credentials file apply to an external NATS only; the embedded server ignores them")
	}
	sopts := &server.Options{
		ServerName: "sticky",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		Users:      users,
		NoSigs:     true,
		MaxPayload: 1 << 20,
		Websocket: server.WebsocketOpts{
			Host:             wsHost,
			Port:             wsPort,
			NoTLS:            true,
			AllowedOrigins:   o.WSAllowedOrigins,
			Compression:      true,
			HandshakeTimeout: 5 * time.Second,
		},
	}
	if o.ClusterAddr != "" {
		chost, cport, err := listenParts(o.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("screenpop: NATS cluster address %q: %w", o.ClusterAddr, err)
		}
		name := o.ClusterName
		if name == "" {
			name = "sticky"
		}
		sopts.Cluster = server.ClusterOpts{Name: name, Host: chost, Port: cport}
		if len(o.Routes) > 0 {
			sopts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
		}
		sopts.ServerName = o.ServerName
		if sopts.ServerName == "" {
			host, _ := os.Hostname()
			sopts.ServerName = fmt.Sprintf("sticky-%s-%d", host, cport)
		}
	}
	sopts.SyncAlways = o.SyncAlways
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("screenpop: embedded NATS: %w", err)
	}
	ns.SetLoggerV2(&serverLog{s.log.With("nats", "server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("screenpop: embedded NATS did not start on %s / %s (is the port in use?)", o.Addr, o.WSAddr)
	}
	s.ns = ns
	if a := ns.Addr(); a != nil {
		s.clientAddr = a.String()
	}
	if u, err := url.Parse(ns.WebsocketURL()); err == nil {
		s.wsAddr = u.Host
	}
	return bridge, nil
}

// agentPermissions lets an agent read its own pops and its queues' pops
// (live, or through an ordered consumer on the stream filtered to those
// subjects), receive replies only on its own inbox prefix, send wrap-ups,
// and identify callers and fetch contexts on its own subjects. It cannot
// publish pops, read another agent's subject, create a consumer on another
// subject, list or delete consumers.
func agentPermissions(a Agent) *server.Permissions {
	subs := []string{AgentSubject(a.ID)}
	for _, q := range a.Queues {
		subs = append(subs, QueueSubject(q))
	}
	api := "$JS.API"
	pub := []string{
		SubjectWrapUp,
		SubjectProfilePrefix + "." + Token(a.ID),
		IdentifySubject(a.ID),
		ContextSubject(a.ID),
		api + ".STREAM.INFO." + StreamName,
		api + ".CONSUMER.MSG.NEXT." + StreamName + ".*",
		api + ".CONSUMER.INFO." + StreamName + ".*",
	}
	for _, subj := range subs {
		// The server checks that the filter in the subject is the
		// consumer's filter, so an agent cannot widen it.
		pub = append(pub, api+".CONSUMER.CREATE."+StreamName+".*."+subj)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: append(subs, InboxPrefix(a.ID)+".>")},
	}
}

// serverLog sends the embedded server's log lines to slog.
type serverLog struct{ log *slog.Logger }

// Noticef is the server's start-up banner and chatter: debug level, so the
// bridge's own "embedded NATS listening" line is what operators see.
func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  {}
