// Package config loads the bridges' settings: defaults, then a YAML file,
// then STICKY_* environment variables, then flags, each overriding the last.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

// Config is every setting of a bridge process.
type Config struct {
	DataDir           string        `yaml:"data_dir" env:"STICKY_DATA_DIR" flag:"data-dir" help:"Badger directory"`
	HTTPAddr          string        `yaml:"http_addr" env:"STICKY_HTTP_ADDR" flag:"http-addr" help:"HTTP API, adapters and desktop listen address (port 0 picks one)"`
	APIKeys           []string      `yaml:"api_keys" env:"STICKY_API_KEYS" flag:"api-keys" help:"comma-separated API keys, each a plain key (every scope) or name:scope+scope:secret (scopes ingest, calls, read, admin); none: loopback only" secret:"true"`
	APIKeysFile       string        `yaml:"api_keys_file" env:"STICKY_API_KEYS_FILE" flag:"api-keys-file" help:"YAML list of API keys, each {name, key or sha256, scopes}"`
	RatePerSecond     float64       `yaml:"rate_per_second" env:"STICKY_RATE_PER_SECOND" flag:"rate-per-second" help:"requests per second allowed per API key"`
	DefaultRegion     string        `yaml:"default_region" env:"STICKY_DEFAULT_REGION" flag:"default-region" help:"region for numbers without a country code"`
	EncryptionKeyFile string        `yaml:"encryption_key_file" env:"STICKY_ENCRYPTION_KEY_FILE" flag:"encryption-key-file" help:"file holding a 16, 24 or 32 byte AES key (raw, hex or base64) for encryption at rest"`
	EncryptionKey     string        `yaml:"-" env:"STICKY_ENCRYPTION_KEY" flag:"-" help:"the key itself (hex or base64), instead of a file" secret:"true"`
	LogFormat         string        `yaml:"log_format" env:"STICKY_LOG_FORMAT" flag:"log-format" help:"text or json"`
	LogLevel          string        `yaml:"log_level" env:"STICKY_LOG_LEVEL" flag:"log-level" help:"debug, info, warn or error"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout" env:"STICKY_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" help:"how long SIGTERM waits for in-flight work"`
	VariableTTL       time.Duration `yaml:"variable_ttl" env:"STICKY_VARIABLE_TTL" flag:"variable-ttl" help:"default lifetime of variables"`
	IntentWindow      time.Duration `yaml:"intent_window" env:"STICKY_INTENT_WINDOW" flag:"intent-window" help:"unresolved intents expire after this long without contact"`
	AccessRetention   time.Duration `yaml:"access_retention" env:"STICKY_ACCESS_RETENTION" flag:"access-retention" help:"how long the access log (who saw which customer) keeps its records"`
	StoreCompression  string        `yaml:"store_compression" env:"STICKY_STORE_COMPRESSION" flag:"store-compression" help:"block compression of the store's tables: snappy, zstd or none (tables keep what they were written with)"`
	DiscloseLevel     string        `yaml:"disclose_level" env:"STICKY_DISCLOSE_LEVEL" flag:"disclose-level" help:"lowest identity recommendation whose pop carries the caller's context (all, ignore, confirm, reuse, never); below it the agent verifies the caller first"`
	VerifyPrompts     string        `yaml:"verify_prompts" env:"STICKY_VERIFY_PROMPTS" flag:"verify-prompts" help:"what the desktop asks the agent to check before the context is shown; several prompts separated by |"`
	StatsWindow       time.Duration `yaml:"stats_window" env:"STICKY_STATS_WINDOW" flag:"stats-window" help:"window of the cross-channel figures exported as metrics"`
	StatsEvery        time.Duration `yaml:"stats_every" env:"STICKY_STATS_EVERY" flag:"stats-every" help:"how often those figures are recomputed (they scan the store)"`
	MinFreeMiB        float64       `yaml:"min_free_mib" env:"STICKY_MIN_FREE_MIB" flag:"min-free-mib" help:"refuse writes (503) while the data disk has less free space than this many MiB"`
	MemoryLimitMiB    int           `yaml:"memory_limit_mib" env:"STICKY_MEMORY_LIMIT_MIB" flag:"memory-limit-mib" help:"soft limit of the Go heap in MiB (GOMEMLIMIT, if set, wins); the collector works harder near it; 0: off"`
	MinGoProcs        int           `yaml:"min_go_procs" env:"STICKY_MIN_GO_PROCS" flag:"min-go-procs" help:"run at least this many Go processors (GOMAXPROCS, if set, wins): more than the cores lets the kernel interleave requests with the store's compactions; 0: Go's default"`
	PprofAddr         string        `yaml:"pprof_addr" env:"STICKY_PPROF_ADDR" flag:"pprof-addr" help:"serve Go's pprof profiles on this loopback address (port 0 picks one); empty: off"`

	// Keys are the API keys of APIKeys and APIKeysFile, checked by Load.
	Keys []api.Key `yaml:"-"`

	Identity  Identity  `yaml:"identity"`
	Adapters  Adapters  `yaml:"adapters"`
	Cluster   Cluster   `yaml:"cluster"`
	Redaction Redaction `yaml:"redaction"`

	NATS NATS `yaml:"nats"`
	ARI  ARI  `yaml:"ari"`
	ESL  ESL  `yaml:"esl"`
}

// NATS configures screen-pop delivery.
type NATS struct {
	URL       string `yaml:"url" env:"STICKY_NATS_URL" flag:"nats-url" help:"external NATS; empty runs the embedded server"`
	Addr      string `yaml:"addr" env:"STICKY_NATS_ADDR" flag:"nats-addr" help:"embedded NATS client listener"`
	WSAddr    string `yaml:"ws_addr" env:"STICKY_NATS_WS_ADDR" flag:"nats-ws-addr" help:"embedded NATS websocket listener (agent desktops)"`
	CredsFile string `yaml:"creds_file" env:"STICKY_NATS_CREDS" flag:"nats-creds" help:"credentials file for an external NATS"`
	Token     string `yaml:"token" env:"STICKY_NATS_TOKEN" flag:"-" help:"token for an external NATS" secret:"true"`
	User      string `yaml:"user" env:"STICKY_NATS_USER" flag:"nats-user" help:"user for an external NATS"`
	Password  string `yaml:"password" env:"STICKY_NATS_PASSWORD" flag:"-" help:"password for an external NATS" secret:"true"`
	TLSCA     string `yaml:"tls_ca" env:"STICKY_NATS_TLS_CA" flag:"nats-tls-ca" help:"CA file to verify an external NATS"`
	TLSCert   string `yaml:"tls_cert" env:"STICKY_NATS_TLS_CERT" flag:"nats-tls-cert" help:"client certificate for an external NATS"`
	TLSKey    string `yaml:"tls_key" env:"STICKY_NATS_TLS_KEY" flag:"nats-tls-key" help:"client key for an external NATS"`
	// DesktopWSURL is the websocket URL the desktop page connects to, when
	// it cannot be derived (behind a TLS proxy, or with an external NATS).
	DesktopWSURL     string   `yaml:"desktop_ws_url" env:"STICKY_NATS_DESKTOP_WS_URL" flag:"nats-desktop-ws-url" help:"websocket URL the desktop page uses (default: the page's host and the ws port)"`
	WSAllowedOrigins []string `yaml:"ws_allowed_origins" env:"STICKY_NATS_WS_ALLOWED_ORIGINS" flag:"nats-ws-allowed-origins" help:"page origins allowed to open the NATS websocket (default: any; agents must still sign in)"`
	// PopRetention is how long pops stay in the stream for late desktops.
	PopRetention time.Duration `yaml:"pop_retention" env:"STICKY_POP_RETENTION" flag:"pop-retention" help:"how long pops are kept for desktops that connect late"`
	// ServerName, ClusterAddr and Routes let the embedded servers of
	// several nodes form one NATS cluster, so that a clustered Sticky needs
	// no NATS of its own.
	ServerName  string   `yaml:"server_name" env:"STICKY_NATS_SERVER_NAME" flag:"nats-server-name" help:"embedded NATS server name, unique in its NATS cluster (default: host name and cluster port)"`
	ClusterAddr string   `yaml:"cluster_addr" env:"STICKY_NATS_CLUSTER_ADDR" flag:"nats-cluster-addr" help:"embedded NATS route listener for other nodes' servers (empty: not clustered)"`
	Routes      []string `yaml:"routes" env:"STICKY_NATS_ROUTES" flag:"nats-routes" help:"comma-separated nats-route://host:port of the other nodes' embedded servers"`
	// Agents are the desktop logins of the embedded server.
	Agents []Agent `yaml:"agents"`
	// AgentsFile holds agents as YAML (a list), so passwords stay out of the main file.
	AgentsFile string `yaml:"agents_file" env:"STICKY_AGENTS_FILE" flag:"agents-file" help:"YAML list of agent logins for the desktop"`
}

// Cluster makes several nodes share one customer memory, replicated by
// NATS JetStream.
type Cluster struct {
	Name     string `yaml:"name" env:"STICKY_CLUSTER" flag:"cluster" help:"name of the shared memory: nodes with the same name on the same NATS share it (empty: a standalone node)"`
	Replicas int    `yaml:"replicas" env:"STICKY_CLUSTER_REPLICAS" flag:"cluster-replicas" help:"copies JetStream keeps of the shared memory (3; 1 for a single NATS server)"`
	MaxLag   int    `yaml:"max_lag" env:"STICKY_CLUSTER_MAX_LAG" flag:"cluster-max-lag" help:"log entries a node may be behind and still report ready"`
	// SnapshotEvery and KeepEntries bound the stream: a snapshot of the
	// memory is stored this often, and the stream keeps only the entries
	// after it plus KeepEntries.
	SnapshotEvery time.Duration `yaml:"snapshot_every" env:"STICKY_CLUSTER_SNAPSHOT_EVERY" flag:"cluster-snapshot-every" help:"how often a snapshot of the shared memory is stored (new nodes start from it)"`
	KeepEntries   int           `yaml:"keep_entries" env:"STICKY_CLUSTER_KEEP_ENTRIES" flag:"cluster-keep-entries" help:"entries the stream keeps before the latest snapshot"`
}

// Agent is one desktop login.
type Agent struct {
	ID       string   `yaml:"id"`
	Password string   `yaml:"password"`
	Queues   []string `yaml:"queues"`
}

// Identity holds the identity match model's settings (core.Model; the
// README's "How identity is decided" explains each and its default).
type Identity struct {
	PriorBits                    float64       `yaml:"prior_bits" env:"STICKY_IDENTITY_PRIOR_BITS" flag:"identity-prior-bits" help:"prior log2 odds that a customer holding the evidence is the caller"`
	PhoneM                       float64       `yaml:"phone_m" env:"STICKY_IDENTITY_PHONE_M" flag:"identity-phone-m" help:"m: chance a returning caller calls from a number on file"`
	PhoneU                       float64       `yaml:"phone_u" env:"STICKY_IDENTITY_PHONE_U" flag:"identity-phone-u" help:"u: chance a call from a customer's number is someone else (per holder)"`
	EmailM                       float64       `yaml:"email_m" env:"STICKY_IDENTITY_EMAIL_M" flag:"identity-email-m" help:"m: chance a returning customer gives an email on file"`
	EmailU                       float64       `yaml:"email_u" env:"STICKY_IDENTITY_EMAIL_U" flag:"identity-email-u" help:"u: chance someone else gives a customer's email"`
	ExternalIDM                  float64       `yaml:"external_id_m" env:"STICKY_IDENTITY_EXTERNAL_ID_M" flag:"identity-external-id-m" help:"m: chance a returning customer gives an id (customer id, CRM id, account number) on file"`
	ExternalIDU                  float64       `yaml:"external_id_u" env:"STICKY_IDENTITY_EXTERNAL_ID_U" flag:"identity-external-id-u" help:"u: chance someone else gives a customer's id"`
	RecencyBits                  float64       `yaml:"recency_bits" env:"STICKY_IDENTITY_RECENCY_BITS" flag:"identity-recency-bits" help:"log2 odds a contact today adds (decays to 0 over recency_window)"`
	RecencyWindow                time.Duration `yaml:"recency_window" env:"STICKY_RECENCY_WINDOW" flag:"recency-window" help:"how long recent contact keeps adding confidence"`
	Reuse                        float64       `yaml:"reuse_threshold" env:"STICKY_IDENTITY_REUSE" flag:"identity-reuse" help:"posterior at which the best candidate is reused"`
	Confirm                      float64       `yaml:"confirm_threshold" env:"STICKY_IDENTITY_CONFIRM" flag:"identity-confirm" help:"combined posterior of the candidates at which the agent is asked instead of a new customer created"`
	StaleAfter                   time.Duration `yaml:"stale_after" env:"STICKY_IDENTITY_STALE_AFTER" flag:"identity-stale-after" help:"a number unseen on its customer for longer may be reassigned (0: off)"`
	StalePenaltyBits             float64       `yaml:"stale_penalty_bits" env:"STICKY_IDENTITY_STALE_PENALTY_BITS" flag:"identity-stale-penalty-bits" help:"log2 odds a stale number loses"`
	AttestationABits             float64       `yaml:"attestation_a_bits" env:"STICKY_IDENTITY_ATTESTATION_A_BITS" flag:"identity-attestation-a-bits" help:"log2 odds a STIR/SHAKEN A attestation adds to the caller id"`
	AttestationBPenaltyBits      float64       `yaml:"attestation_b_penalty_bits" env:"STICKY_IDENTITY_ATTESTATION_B_PENALTY_BITS" flag:"identity-attestation-b-penalty-bits" help:"log2 odds a B attestation takes from the caller id"`
	AttestationCPenaltyBits      float64       `yaml:"attestation_c_penalty_bits" env:"STICKY_IDENTITY_ATTESTATION_C_PENALTY_BITS" flag:"identity-attestation-c-penalty-bits" help:"log2 odds a C attestation takes from the caller id"`
	AttestationFailedPenaltyBits float64       `yaml:"attestation_failed_penalty_bits" env:"STICKY_IDENTITY_ATTESTATION_FAILED_PENALTY_BITS" flag:"identity-attestation-failed-penalty-bits" help:"log2 odds a failed verification takes from the caller id"`
	SharedCap                    int           `yaml:"shared_cap" env:"STICKY_IDENTITY_SHARED_CAP" flag:"identity-shared-cap" help:"an identifier held by more customers is no evidence and links nobody else"`
}

// IdentityOf is the settings of a model.
func IdentityOf(m core.Model) Identity {
	return Identity{
		PriorBits: m.PriorBits, PhoneM: m.Phone.M, PhoneU: m.Phone.U, EmailM: m.Email.M, EmailU: m.Email.U,
		ExternalIDM: m.ExternalID.M, ExternalIDU: m.ExternalID.U, RecencyBits: m.RecencyBits, RecencyWindow: m.RecencyWindow,
		Reuse: m.Reuse, Confirm: m.Confirm, StaleAfter: m.StaleAfter, StalePenaltyBits: m.StalePenaltyBits,
		AttestationABits: m.AttestationABits, AttestationBPenaltyBits: m.AttestationBPenaltyBits,
		AttestationCPenaltyBits: m.AttestationCPenaltyBits, AttestationFailedPenaltyBits: m.AttestationFailedPenaltyBits,
		SharedCap: m.SharedCap,
	}
}

// Model is the engine's model of these settings.
func (i Identity) Model() core.Model {
	return core.Model{
		PriorBits: i.PriorBits, Phone: core.Evidence{M: i.PhoneM, U: i.PhoneU}, Email: core.Evidence{M: i.EmailM, U: i.EmailU},
		ExternalID: core.Evidence{M: i.ExternalIDM, U: i.ExternalIDU}, RecencyBits: i.RecencyBits, RecencyWindow: i.RecencyWindow,
		Reuse: i.Reuse, Confirm: i.Confirm, StaleAfter: i.StaleAfter, StalePenaltyBits: i.StalePenaltyBits,
		AttestationABits: i.AttestationABits, AttestationBPenaltyBits: i.AttestationBPenaltyBits,
		AttestationCPenaltyBits: i.AttestationCPenaltyBits, AttestationFailedPenaltyBits: i.AttestationFailedPenaltyBits,
		SharedCap: i.SharedCap,
	}
}

// Adapters configures the chat, email and Zendesk endpoints.
type Adapters struct {
	WebhookSecret string        `yaml:"webhook_secret" env:"STICKY_WEBHOOK_SECRET" flag:"-" help:"shared secret for HMAC-signed webhooks (empty: API key only)" secret:"true"`
	ReplayWindow  time.Duration `yaml:"replay_window" env:"STICKY_WEBHOOK_REPLAY_WINDOW" flag:"webhook-replay-window" help:"how old a signed webhook's timestamp may be"`
	ZendeskSecret string        `yaml:"zendesk_webhook_secret" env:"STICKY_ZENDESK_WEBHOOK_SECRET" flag:"-" help:"a Zendesk webhook's signing secret, so Zendesk's own signature is accepted (empty: off)" secret:"true"`
	OwnAddresses  []string      `yaml:"own_email_addresses" env:"STICKY_OWN_EMAIL_ADDRESSES" flag:"own-email-addresses" help:"your own support addresses or domains: mail from them is skipped"`
	TicketPattern string        `yaml:"ticket_pattern" env:"STICKY_TICKET_PATTERN" flag:"ticket-pattern" help:"regular expression finding a ticket id in an email subject (first group is the id)"`
}

// Redaction configures what is taken out of every channel's free text
// before it is stored, replicated, logged or popped.
type Redaction struct {
	Enabled  bool     `yaml:"enabled" env:"STICKY_REDACT" flag:"redact" help:"redact card numbers, security codes, expiry dates, SSNs and IBANs from free text before it is stored (true or false)"`
	Patterns Patterns `yaml:"patterns" env:"STICKY_REDACT_PATTERNS" flag:"-" help:"your own regular expressions to redact, one per line"`
}

// Patterns are regular expressions. In the environment they are one per
// line, not comma-separated: commas belong to regular expressions (\d{3,4}).
type Patterns []string

// ARI configures the Asterisk bridge.
type ARI struct {
	URL      string        `yaml:"url" env:"STICKY_ARI_URL" flag:"ari-url" help:"Asterisk ARI base URL"`
	WSURL    string        `yaml:"ws_url" env:"STICKY_ARI_WS_URL" flag:"ari-ws-url" help:"ARI events websocket (default: derived from url)"`
	User     string        `yaml:"user" env:"STICKY_ARI_USER" flag:"ari-user" help:"ARI user"`
	Password string        `yaml:"password" env:"STICKY_ARI_PASSWORD" flag:"-" help:"ARI password" secret:"true"`
	App      string        `yaml:"app" env:"STICKY_ARI_APP" flag:"ari-app" help:"Stasis application name"`
	Mode     string        `yaml:"mode" env:"STICKY_ARI_MODE" flag:"ari-mode" help:"stasis, observe or both"`
	Budget   time.Duration `yaml:"budget" env:"STICKY_ARI_BUDGET" flag:"ari-budget" help:"longest a Stasis call waits for its variables"`
	Agents   []AgentRule   `yaml:"agents"`
}

// ESL configures the FreeSWITCH bridge.
type ESL struct {
	Addr       string        `yaml:"addr" env:"STICKY_ESL_ADDR" flag:"esl-addr" help:"FreeSWITCH event socket (inbound mode)"`
	Password   string        `yaml:"password" env:"STICKY_ESL_PASSWORD" flag:"-" help:"event socket password" secret:"true"`
	ListenAddr string        `yaml:"listen_addr" env:"STICKY_ESL_LISTEN_ADDR" flag:"esl-listen-addr" help:"outbound mode: address FreeSWITCH's socket app connects to (empty: off)"`
	Budget     time.Duration `yaml:"budget" env:"STICKY_ESL_BUDGET" flag:"esl-budget" help:"longest a parked call waits for its variables"`
	Agents     []AgentRule   `yaml:"agents"`
}

// AgentRule maps a dialled endpoint to an agent id: the first rule whose
// pattern matches gives the agent as the expansion of Agent ($1, ${name}).
type AgentRule struct {
	Pattern string `yaml:"pattern"`
	Agent   string `yaml:"agent"`
}

// Defaults are the settings with nothing configured: everything on loopback.
func Defaults() Config {
	return Config{
		DataDir:          "./data",
		HTTPAddr:         "127.0.0.1:8080",
		RatePerSecond:    500,
		DefaultRegion:    "US",
		LogFormat:        "text",
		LogLevel:         "info",
		ShutdownTimeout:  15 * time.Second,
		VariableTTL:      30 * 24 * time.Hour,
		IntentWindow:     30 * 24 * time.Hour,
		AccessRetention:  365 * 24 * time.Hour,
		DiscloseLevel:    core.DiscloseReuse,
		StoreCompression: "snappy",
		VerifyPrompts:    DefaultVerifyPrompt,
		StatsWindow:      24 * time.Hour,
		StatsEvery:       5 * time.Minute,
		MinFreeMiB:       256,
		MemoryLimitMiB:   640,
		MinGoProcs:       8,
		Identity:         IdentityOf(core.DefaultModel()),
		Adapters:         Adapters{ReplayWindow: 5 * time.Minute, TicketPattern: `\[([A-Z][A-Z0-9]*-\d+)\]`},
		Cluster:          Cluster{Replicas: 3, MaxLag: 1000, SnapshotEvery: time.Hour, KeepEntries: 10000},
		Redaction:        Redaction{Enabled: true},
		NATS: NATS{
			Addr:         "127.0.0.1:4222",
			WSAddr:       "127.0.0.1:4223",
			PopRetention: 15 * time.Minute,
		},
		ARI: ARI{URL: "http://127.0.0.1:8088/ari", App: "sticky", Mode: "stasis", Budget: 300 * time.Millisecond},
		ESL: ESL{Addr: "127.0.0.1:8021", Password: "ClueCon", Budget: 300 * time.Millisecond},
	}
}

// DefaultVerifyPrompt is what the desktop asks the agent to check before a
// withheld context is shown.
const DefaultVerifyPrompt = core.DefaultVerifyPrompt

const maxPrompt = 300

// Prompts are the verification prompts of VerifyPrompts (split at |).
func (c Config) Prompts() []string {
	var out []string
	for _, p := range strings.Split(c.VerifyPrompts, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Error names the setting that is wrong.
type Error struct {
	Setting string
	Problem string
}

func (e *Error) Error() string { return "config: " + e.Setting + ": " + e.Problem }

// Load reads the configuration from args (flags, including -config),
// the environment and the YAML file -config names.
func Load(name string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	cfg := Defaults()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("STICKY_CONFIG"), "YAML configuration file (env STICKY_CONFIG)")
	set := map[string]*string{}
	walk(reflect.ValueOf(&cfg).Elem(), func(f reflect.StructField, _ reflect.Value) {
		if fl := f.Tag.Get("flag"); fl != "" && fl != "-" {
			set[fl] = fs.String(fl, "", f.Tag.Get("help")+" (env "+f.Tag.Get("env")+")")
		}
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of %s:\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, &Error{"arguments", fmt.Sprintf("unexpected %q (settings are flags, e.g. -http-addr)", fs.Arg(0))}
	}
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return cfg, &Error{"-config", err.Error()}
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, &Error{*configPath, yamlProblem(err)}
		}
	}
	var err error
	walk(reflect.ValueOf(&cfg).Elem(), func(f reflect.StructField, v reflect.Value) {
		if err != nil {
			return
		}
		if env := f.Tag.Get("env"); env != "" {
			if s := getenv(env); s != "" {
				err = setValue(v, s, env)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	fs.Visit(func(fl *flag.Flag) {
		if err != nil || fl.Name == "config" {
			return
		}
		walk(reflect.ValueOf(&cfg).Elem(), func(f reflect.StructField, v reflect.Value) {
			if err == nil && f.Tag.Get("flag") == fl.Name {
				err = setValue(v, *set[fl.Name], "-"+fl.Name)
			}
		})
	})
	if err != nil {
		return cfg, err
	}
	if cfg.NATS.AgentsFile != "" {
		b, rerr := os.ReadFile(cfg.NATS.AgentsFile)
		if rerr != nil {
			return cfg, &Error{"nats.agents_file", rerr.Error()}
		}
		var agents []Agent
		if yerr := yaml.Unmarshal(b, &agents); yerr != nil {
			return cfg, &Error{"nats.agents_file", yamlProblem(yerr)}
		}
		cfg.NATS.Agents = append(cfg.NATS.Agents, agents...)
	}
	if err := cfg.loadKeys(); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	return strings.Join(strings.Fields(msg), " ")
}

// walk visits every leaf setting of a struct.
func walk(v reflect.Value, fn func(reflect.StructField, reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			walk(fv, fn)
			continue
		}
		fn(f, fv)
	}
}

func setValue(v reflect.Value, s, setting string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(s)
	case []string:
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		v.Set(reflect.ValueOf(out))
	case Patterns:
		var out Patterns
		for _, p := range strings.Split(s, "\n") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		v.Set(reflect.ValueOf(out))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return &Error{setting, fmt.Sprintf("%q is not true or false", s)}
		}
		v.SetBool(b)
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return &Error{setting, fmt.Sprintf("%q is not a duration such as 300ms, 15s or 720h", s)}
		}
		v.SetInt(int64(d))
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return &Error{setting, fmt.Sprintf("%q is not a whole number", s)}
		}
		v.SetInt(int64(n))
	case float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return &Error{setting, fmt.Sprintf("%q is not a number", s)}
		}
		v.SetFloat(f)
	default:
		// slices of structs (agents, rules) come from YAML only
		return &Error{setting, "can only be set in the YAML file"}
	}
	return nil
}

// Validate checks every setting and names the first one that is wrong.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return &Error{"STICKY_DATA_DIR (data_dir)", "must not be empty"}
	}
	for _, a := range []struct{ setting, addr string }{
		{"STICKY_HTTP_ADDR (http_addr)", c.HTTPAddr},
		{"STICKY_NATS_ADDR (nats.addr)", c.NATS.Addr},
		{"STICKY_NATS_WS_ADDR (nats.ws_addr)", c.NATS.WSAddr},
		{"STICKY_ESL_ADDR (esl.addr)", c.ESL.Addr},
	} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil || !validPort(port) {
			return &Error{a.setting, fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8080; port 0 picks a free one)", a.addr)}
		}
	}
	if c.PprofAddr != "" {
		host, port, err := net.SplitHostPort(c.PprofAddr)
		ip := net.ParseIP(host)
		if err != nil || !validPort(port) || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return &Error{"STICKY_PPROF_ADDR (pprof_addr)", fmt.Sprintf("%q must be a loopback host:port such as 127.0.0.1:6060 (profiles reveal the process's internals)", c.PprofAddr)}
		}
	}
	if c.ESL.ListenAddr != "" {
		if _, port, err := net.SplitHostPort(c.ESL.ListenAddr); err != nil || !validPort(port) {
			return &Error{"STICKY_ESL_LISTEN_ADDR (esl.listen_addr)", fmt.Sprintf("%q is not host:port", c.ESL.ListenAddr)}
		}
	}
	if err := c.Identity.Model().Validate(); err != nil {
		var me *core.ModelError
		if errors.As(err, &me) {
			return &Error{identitySetting(me.Setting), me.Problem}
		}
		return &Error{"identity", err.Error()}
	}
	if c.Cluster.Name != "" && !clusterName.MatchString(c.Cluster.Name) {
		return &Error{"STICKY_CLUSTER (cluster.name)", fmt.Sprintf("%q must be 1-64 letters, digits, '_' or '-'", c.Cluster.Name)}
	}
	if r := c.Cluster.Replicas; r < 1 || r > 5 {
		return &Error{"STICKY_CLUSTER_REPLICAS (cluster.replicas)", "must be from 1 to 5"}
	}
	if c.Cluster.SnapshotEvery < time.Minute {
		return &Error{"STICKY_CLUSTER_SNAPSHOT_EVERY (cluster.snapshot_every)", "must be at least 1m"}
	}
	if c.Cluster.KeepEntries < 0 {
		return &Error{"STICKY_CLUSTER_KEEP_ENTRIES (cluster.keep_entries)", "must not be negative"}
	}
	if c.Cluster.MaxLag < 1 {
		return &Error{"STICKY_CLUSTER_MAX_LAG (cluster.max_lag)", "must be at least 1"}
	}
	if c.NATS.ClusterAddr != "" {
		if _, port, err := net.SplitHostPort(c.NATS.ClusterAddr); err != nil || !validPort(port) {
			return &Error{"STICKY_NATS_CLUSTER_ADDR (nats.cluster_addr)", fmt.Sprintf("%q is not host:port (e.g. 0.0.0.0:6222)", c.NATS.ClusterAddr)}
		}
		if c.NATS.URL != "" {
			return &Error{"STICKY_NATS_CLUSTER_ADDR (nats.cluster_addr)", "clusters the embedded server, but STICKY_NATS_URL points at an external NATS"}
		}
	}
	if len(c.NATS.Routes) > 0 && c.NATS.ClusterAddr == "" {
		return &Error{"STICKY_NATS_ROUTES (nats.routes)", "needs STICKY_NATS_CLUSTER_ADDR: the embedded server must listen for routes too"}
	}
	for _, r := range c.NATS.Routes {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "nats-route" && u.Scheme != "nats") || u.Port() == "" {
			return &Error{"STICKY_NATS_ROUTES (nats.routes)", fmt.Sprintf("%q is not nats-route://host:port", r)}
		}
	}
	if c.MemoryLimitMiB < 0 {
		return &Error{"STICKY_MEMORY_LIMIT_MIB (memory_limit_mib)", "must not be negative (0 turns the limit off)"}
	}
	if c.MinGoProcs < 0 || c.MinGoProcs > 1024 {
		return &Error{"STICKY_MIN_GO_PROCS (min_go_procs)", "must be 0 to 1024 (0 leaves Go's default)"}
	}
	if c.MinFreeMiB < 0 {
		return &Error{"STICKY_MIN_FREE_MIB (min_free_mib)", "must not be negative (0 turns the check off)"}
	}
	if _, err := regexp.Compile(c.Adapters.TicketPattern); err != nil {
		return &Error{"STICKY_TICKET_PATTERN (adapters.ticket_pattern)", "is not a regular expression: " + err.Error()}
	}
	for i, p := range c.Redaction.Patterns {
		if err := redact.CheckPattern(p); err != nil {
			return &Error{fmt.Sprintf("STICKY_REDACT_PATTERNS (redaction.patterns[%d])", i), fmt.Sprintf("%q %v", p, err)}
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &Error{"STICKY_LOG_FORMAT (log_format)", fmt.Sprintf("%q must be text or json", c.LogFormat)}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{"STICKY_LOG_LEVEL (log_level)", fmt.Sprintf("%q must be debug, info, warn or error", c.LogLevel)}
	}
	switch c.ARI.Mode {
	case "stasis", "observe", "both":
	default:
		return &Error{"STICKY_ARI_MODE (ari.mode)", fmt.Sprintf("%q must be stasis, observe or both", c.ARI.Mode)}
	}
	if len(c.DefaultRegion) != 2 || strings.ToUpper(c.DefaultRegion) != c.DefaultRegion {
		return &Error{"STICKY_DEFAULT_REGION (default_region)", fmt.Sprintf("%q must be a two-letter region code such as US or GB", c.DefaultRegion)}
	}
	if c.RatePerSecond <= 0 {
		return &Error{"STICKY_RATE_PER_SECOND (rate_per_second)", "must be above 0"}
	}
	if c.VariableTTL <= 0 || c.VariableTTL > 90*24*time.Hour {
		return &Error{"STICKY_VARIABLE_TTL (variable_ttl)", "must be between 1s and 2160h (90 days)"}
	}
	if c.IntentWindow <= 0 {
		return &Error{"STICKY_INTENT_WINDOW (intent_window)", "must be above 0"}
	}
	if c.AccessRetention < time.Hour {
		return &Error{"STICKY_ACCESS_RETENTION (access_retention)", "must be at least 1h"}
	}
	if !slices.Contains(store.Compressions, c.StoreCompression) {
		return &Error{"STICKY_STORE_COMPRESSION (store_compression)", fmt.Sprintf("%q must be one of %s", c.StoreCompression, strings.Join(store.Compressions, ", "))}
	}
	if err := core.CheckDiscloseLevel(c.DiscloseLevel); err != nil || c.DiscloseLevel == "" {
		return &Error{"STICKY_DISCLOSE_LEVEL (disclose_level)", fmt.Sprintf("%q must be one of %s", c.DiscloseLevel, strings.Join(core.DiscloseLevels, ", "))}
	}
	if len(c.Prompts()) == 0 {
		return &Error{"STICKY_VERIFY_PROMPTS (verify_prompts)", "must name at least one prompt (the default is " + strconv.Quote(DefaultVerifyPrompt) + ")"}
	}
	for _, p := range c.Prompts() {
		if len(p) > maxPrompt || strings.IndexFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
			return &Error{"STICKY_VERIFY_PROMPTS (verify_prompts)", fmt.Sprintf("each prompt must be one line of at most %d bytes", maxPrompt)}
		}
	}
	if c.NATS.PopRetention < time.Second {
		return &Error{"STICKY_POP_RETENTION (nats.pop_retention)", "must be at least 1s"}
	}
	if c.StatsWindow <= 0 || c.StatsEvery < time.Second {
		return &Error{"STICKY_STATS_WINDOW / STICKY_STATS_EVERY", "window must be above 0 and the period at least 1s"}
	}
	if c.ShutdownTimeout <= 0 {
		return &Error{"STICKY_SHUTDOWN_TIMEOUT (shutdown_timeout)", "must be above 0"}
	}
	for i, a := range c.NATS.Agents {
		if a.ID == "" || a.Password == "" {
			return &Error{fmt.Sprintf("nats.agents[%d]", i), "needs an id and a password"}
		}
	}
	for _, rules := range [][]AgentRule{c.ARI.Agents, c.ESL.Agents} {
		for i, r := range rules {
			if r.Pattern == "" || r.Agent == "" {
				return &Error{fmt.Sprintf("agents[%d]", i), "needs a pattern and an agent"}
			}
		}
	}
	return nil
}

// identitySetting names an identity setting as operators set it:
// "STICKY_IDENTITY_REUSE (identity.reuse_threshold)".
func identitySetting(yamlName string) string {
	t := reflect.TypeFor[Identity]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("yaml") == yamlName {
			return f.Tag.Get("env") + " (identity." + yamlName + ")"
		}
	}
	return "identity." + yamlName
}

var clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n < 65536
}
