package screenpop

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
)

// serviceTimeout bounds one engine call made for a NATS request.
const serviceTimeout = 10 * time.Second

// schema points at a schema of the HTTP API's OpenAPI document, which the
// bridge serves at api.OpenAPIPath: NATS bodies are the HTTP bodies.
func schema(name string) string { return api.OpenAPIPath + "#/components/schemas/" + name }

// addServices registers start, end, wrap-up and the desktop profile as one
// NATS micro service ("sticky"), discoverable under $SRV. Each endpoint's
// metadata names the schemas of what to send and what comes back, so that
// "nats micro info sticky" tells an integrator.
func (s *Service) addServices() error {
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        "sticky",
		Version:     "1.0.0",
		Description: "Sticky calls API over NATS: start, end, agent wrap-up",
		QueueGroup:  "sticky",
		Metadata: map[string]string{
			"openapi": api.OpenAPIPath,
			"errors":  "the HTTP error envelope plus code (the HTTP status), also in the Nats-Service-Error-Code header",
		},
	})
	if err != nil {
		return err
	}
	eps := []struct {
		name, subject string
		h             func(context.Context, micro.Request) (any, error)
		meta          map[string]string
	}{
		{"start", SubjectStart, s.start, map[string]string{
			"description":    "identify the caller and return their context, as POST /v1/calls/start",
			"request_schema": schema("StartRequest"), "response_schema": schema("StartResult"), "error_schema": schema("Error")}},
		{"end", SubjectEnd, s.end, map[string]string{
			"description":    "save end-of-interaction context, as POST /v1/calls/end",
			"request_schema": schema("EndRequest"), "response_schema": schema("EndResult"), "error_schema": schema("Error")}},
		{"wrapup", SubjectWrapUp, s.wrapUp, map[string]string{
			"description":    "an agent's wrap-up of a phone call, merged with the PBX's hang-up",
			"request_schema": schema("WrapUpRequest"), "response_schema": schema("EndResult"), "error_schema": schema("Error")}},
		{"profile", SubjectProfilePrefix + ".*", s.profile, map[string]string{
			"description":     "what a desktop learns after it signs in; the last token is the agent, the body is empty",
			"response_schema": schema("DesktopProfile"), "error_schema": schema("Error")}},
	}
	if s.desk != nil {
		type ep = struct {
			name, subject string
			h             func(context.Context, micro.Request) (any, error)
			meta          map[string]string
		}
		eps = append(eps, ep{"identify", SubjectIdentifyPrefix + ".*", s.identify, map[string]string{
			"description":    "an agent says who the caller is, as POST /v1/calls/{call_id}/identify; the last token is the agent",
			"request_schema": schema("IdentifyRequest"), "response_schema": schema("IdentifyResult"), "error_schema": schema("Error")}},
			ep{"context", SubjectContextPrefix + ".*", s.disclose, map[string]string{
				"description":    "a desktop fetches the context of a call popped to its agent once the caller is verified and identified; the last token is the agent",
				"request_schema": schema("ContextRequest"), "response_schema": schema("CallContext"), "error_schema": schema("Error")}})
	}
	for _, ep := range eps {
		h := ep.h
		if err := svc.AddEndpoint(ep.name, micro.HandlerFunc(func(r micro.Request) { s.serve(r, h) }),
			micro.WithEndpointSubject(ep.subject), micro.WithEndpointMetadata(ep.meta)); err != nil {
			_ = svc.Stop()
			return err
		}
	}
	s.ms = svc
	return nil
}

// serve runs h off the subscription's goroutine (engine writes wait for
// the disk) with a bound on how many run at once, and answers like HTTP:
// the result as JSON, or the error envelope with the HTTP status in code.
func (s *Service) serve(r micro.Request, h func(context.Context, micro.Request) (any, error)) {
	select {
	case s.work <- struct{}{}:
	case <-s.stopCtx.Done():
		s.reply(r, nil, &core.Error{Code: core.CodeUnavailable, Message: "shutting down; retry"})
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.work
		s.reply(r, nil, &core.Error{Code: core.CodeUnavailable, Message: "shutting down; retry"})
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.work }()
		ctx, cancel := context.WithTimeout(s.stopCtx, serviceTimeout)
		defer cancel()
		v, err := h(ctx, r)
		if err != nil && api.Status(err) >= 500 {
			s.log.Error("NATS request failed", "subject", r.Subject(), "err", err)
		}
		s.reply(r, v, err)
	}()
}

// reply answers r. It publishes on the connection rather than through r,
// because it runs after the micro handler returned and micro reads r's
// error state then (calling r.Respond here would race with it).
func (s *Service) reply(r micro.Request, v any, err error) {
	if r.Reply() == "" {
		return
	}
	m := nats.NewMsg(r.Reply())
	if err != nil {
		env := api.Envelope(err)
		m.Data, _ = json.Marshal(env)
		m.Header.Set(micro.ErrorHeader, env.Error)
		m.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(env.Code))
	} else if m.Data, err = json.Marshal(v); err != nil {
		s.reply(r, nil, err)
		return
	}
	if err := s.nc.PublishMsg(m); err != nil {
		s.log.Warn("cannot answer a NATS request", "subject", r.Subject(), "err", err)
	}
}

func checkSize(b []byte) error {
	if len(b) > core.MaxBodyBytes {
		return &core.Error{Code: core.CodeTooLarge, Message: "request body is over 64 KiB"}
	}
	return nil
}

func (s *Service) start(ctx context.Context, r micro.Request) (any, error) {
	if err := checkSize(r.Data()); err != nil {
		return nil, err
	}
	req, err := core.ParseStart(r.Data())
	if err != nil {
		return nil, err
	}
	return s.opts.Calls.Start(ctx, req)
}

func (s *Service) end(ctx context.Context, r micro.Request) (any, error) {
	if err := checkSize(r.Data()); err != nil {
		return nil, err
	}
	req, err := core.ParseEnd(r.Data())
	if err != nil {
		return nil, err
	}
	return s.opts.Calls.End(ctx, req)
}

// wrapUpFields are the only fields a wrap-up may carry: an agent adds the
// outcome of a call, it cannot relink identities or pick a customer.
var wrapUpFields = []string{"call_id", "intent", "intent_status", "intent_is_open", "summary", "variables"}

// ParseWrapUp decodes an agent's wrap-up into the end of the phone
// interaction it belongs to, merged with the PBX's own hang-up report.
func ParseWrapUp(b []byte) (core.EndRequest, error) {
	if err := checkSize(b); err != nil {
		return core.EndRequest{}, err
	}
	req, err := core.ParseEnd(b)
	if err != nil {
		return req, err
	}
	var f map[string]json.RawMessage
	_ = json.Unmarshal(b, &f) // ParseEnd accepted it as one object
	var issues []core.Issue
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !slices.Contains(wrapUpFields, k) {
			issues = append(issues, core.Issue{Path: []any{k}, Message: "is not accepted in a wrap-up (only " + strings.Join(wrapUpFields, ", ") + ")"})
		}
	}
	var summary string
	if raw, ok := f["summary"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &summary); err != nil {
			issues = append(issues, core.Issue{Path: []any{"summary"}, Message: "must be a string"})
		}
	}
	if len(issues) > 0 {
		return req, &core.Error{Code: core.CodeInvalid, Message: "invalid wrap-up", Issues: issues}
	}
	if strings.TrimSpace(summary) != "" {
		if req.Variables == nil {
			req.Variables = map[string]string{}
		}
		req.Variables["summary"] = strings.TrimSpace(summary)
	}
	req.Channel = "phone"
	req.Merge = true
	return req, nil
}

// wrapUp saves an agent's wrap-up. Any authenticated agent may wrap up any
// call that was started (calls get transferred; a wrap-up cannot create a
// customer or change who the caller is). An unknown call is a 400 from
// the engine.
func (s *Service) wrapUp(ctx context.Context, r micro.Request) (any, error) {
	req, err := ParseWrapUp(r.Data())
	if err != nil {
		s.count("wrapup_failed")
		return nil, err
	}
	res, err := s.opts.Calls.End(ctx, req)
	if err != nil {
		s.count("wrapup_failed")
		return nil, err
	}
	s.count("wrapup_saved")
	s.log.Info("wrap-up saved", "call_id", req.CallID, "intent", req.Intent, "intent_status", req.IntentStatus)
	return res, nil
}

// identify answers sticky.v1.calls.identify.<agent>: the agent says who
// the caller is ({"call_id", "customer_ref"}, "not": true for "not this
// person", "new_customer": true). The agent is the subject's, which on
// the embedded server only that agent may publish on; the engine refuses
// (403) an agent the call was not popped to.
func (s *Service) identify(ctx context.Context, r micro.Request) (any, error) {
	if err := checkSize(r.Data()); err != nil {
		return nil, err
	}
	agent := s.agentOf(strings.TrimPrefix(r.Subject(), SubjectIdentifyPrefix+"."))
	req, err := core.ParseIdentify(r.Data(), "")
	if err == nil && req.Agent != "" && req.Agent != agent {
		err = &core.Error{Code: core.CodeInvalid, Message: "invalid request",
			Issues: []core.Issue{{Path: []any{"agent"}, Message: "is the agent of the subject; leave it out"}}}
	}
	if err != nil {
		s.count("identify_failed")
		return nil, err
	}
	req.Agent, req.By = agent, "nats:"+agent
	res, err := s.desk.Identify(ctx, req)
	if err != nil {
		s.count("identify_failed")
		return nil, err
	}
	s.count("identify_saved")
	return res, nil
}

// disclose answers sticky.v1.desktop.context.<agent> ({"call_id"}): the
// context of a call popped to that agent, once its caller is identified
// (or its pop carried it already). The engine refuses (403) another agent
// and keeps the attempt in the access log.
func (s *Service) disclose(ctx context.Context, r micro.Request) (any, error) {
	if err := checkSize(r.Data()); err != nil {
		return nil, err
	}
	agent := s.agentOf(strings.TrimPrefix(r.Subject(), SubjectContextPrefix+"."))
	callID, err := core.ParseDisclose(r.Data())
	if err != nil {
		s.count("context_refused")
		return nil, err
	}
	res, err := s.desk.Disclose(ctx, callID, agent)
	if err != nil {
		s.count("context_refused")
		return nil, err
	}
	s.count("context_disclosed")
	return res, nil
}

// agentOf is the agent whose subject token tok is.
func (s *Service) agentOf(tok string) string {
	for _, a := range s.opts.Agents {
		if Token(a.ID) == tok {
			return a.ID
		}
	}
	return tok
}

// Profile is what a desktop learns after it logs in: the subjects its
// agent may read.
type Profile struct {
	Agent       string   `json:"agent"`
	Queues      []string `json:"queues"`
	Subjects    []string `json:"subjects"`
	Stream      string   `json:"stream"`
	InboxPrefix string   `json:"inbox_prefix"`
	WrapUp      string   `json:"wrapup_subject"`
	// Identify is where the agent says who a caller is ("" when the
	// engine cannot be told).
	Identify string `json:"identify_subject,omitempty"`
	// Context is where the desktop fetches a verified caller's context
	// ("" when the engine cannot be asked).
	Context string `json:"context_subject,omitempty"`
}

// profile answers sticky.v1.desktop.profile.<agent>. On the embedded
// server only that agent may publish there.
func (s *Service) profile(_ context.Context, r micro.Request) (any, error) {
	tok := strings.TrimPrefix(r.Subject(), SubjectProfilePrefix+".")
	p := Profile{Agent: tok, Queues: []string{}, Stream: StreamName, InboxPrefix: InboxPrefix(tok), WrapUp: SubjectWrapUp}
	if s.desk != nil {
		p.Identify = SubjectIdentifyPrefix + "." + tok
		p.Context = SubjectContextPrefix + "." + tok
	}
	for _, a := range s.opts.Agents {
		if Token(a.ID) == tok {
			p.Agent = a.ID
			p.Queues = append(p.Queues, a.Queues...)
			break
		}
	}
	p.Subjects = append(p.Subjects, AgentSubject(p.Agent))
	for _, q := range p.Queues {
		p.Subjects = append(p.Subjects, QueueSubject(q))
	}
	return p, nil
}
