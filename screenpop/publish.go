package screenpop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/core"
)

// attemptTimeout bounds one publish attempt; a lost acknowledgement is
// retried with the same message id, which JetStream deduplicates.
const attemptTimeout = 3 * time.Second

// Pop publishes p to the agent's subject, the queue's subject and the
// call's subject (each present one), and returns once JetStream has
// acknowledged every copy. While NATS or the stream is away it waits and
// retries; only the end of ctx (or a pop too big for NATS) makes it give
// up.
func (s *Service) Pop(ctx context.Context, p core.Pop) error {
	msgs, err := s.messages(ctx, p)
	if err != nil {
		s.count("pop_failed")
		return err
	}
	// The engine learns whom the call rang before the desktop can see it,
	// so the agent may say who the caller is as soon as the pop shows.
	if s.desk != nil && p.Agent != "" {
		if err := s.desk.Popped(ctx, p.CallID, p.Agent); err != nil && core.ErrorCode(err) != core.CodeNotFound {
			s.log.Warn("cannot record whom a call was popped to; that agent cannot identify the caller", "call_id", p.CallID, "agent", p.Agent, "err", err)
		}
	}
	for _, m := range msgs {
		if err := s.publish(ctx, m); err != nil {
			s.count("pop_failed")
			s.log.Warn("screen-pop not delivered", "call_id", p.CallID, "agent", p.Agent, "queue", p.Queue, "err", err)
			return err
		}
	}
	s.count("pop_published")
	return nil
}

// messages builds the copies of one pop, the agent's first (it is the one
// a desktop is waiting for). Below the disclosure level every copy holds
// the withheld context only: what is not shown is not sent.
func (s *Service) messages(ctx context.Context, p core.Pop) ([]*nats.Msg, error) {
	if p.CallID == "" {
		return nil, errors.New("screenpop: a pop needs a call_id")
	}
	if p.RangAt.IsZero() {
		p.RangAt = s.opts.Now()
	}
	customer := customerOf(p.Context)
	var body any = p.Context
	if s.desk != nil {
		if w := s.desk.Withhold(ctx, p.Context); w != nil {
			v := Verify{Prompts: s.opts.VerifyPrompts}
			if p.Agent != "" {
				v.ContextSubject = ContextSubject(p.Agent)
			}
			body, customer = withheldPop{w, v}, Customer{}
			s.count("pop_withheld")
		}
	}
	// The context is most of the pop: encode it once for all copies.
	ctxJSON, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("screenpop: encoding a pop: %w", err)
	}
	base := wirePayload{
		Version: PayloadVersion,
		Type:    "screenpop",
		Call: Call{
			CallID: p.CallID, PBX: p.PBX, PBXCallID: p.PBXCallID, ANI: p.ANI, DNIS: p.DNIS,
			Agent: p.Agent, Queue: p.Queue, RangAt: p.RangAt.UTC(),
		},
		Customer: customer,
		SentAt:   s.opts.Now().UTC(),
		Context:  ctxJSON,
	}
	type copyOf struct{ target, key, subject string }
	var copies []copyOf
	if p.Agent != "" {
		copies = append(copies, copyOf{"agent", p.Agent, AgentSubject(p.Agent)})
	}
	if p.Queue != "" {
		copies = append(copies, copyOf{"queue", p.Queue, QueueSubject(p.Queue)})
	}
	// The call's subject gets one copy per agent (or queue) it rang.
	callKey := p.Agent
	if callKey == "" {
		callKey = "queue:" + p.Queue
	}
	copies = append(copies, copyOf{"call", callKey, CallSubject(p.CallID)})
	out := make([]*nats.Msg, 0, len(copies))
	for _, c := range copies {
		pl := base
		pl.Target = c.target
		pl.ID = popID(p, c.target, c.key)
		data, err := json.Marshal(pl)
		if err != nil {
			return nil, fmt.Errorf("screenpop: encoding a pop: %w", err)
		}
		m := nats.NewMsg(c.subject)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, pl.ID)
		m.Header.Set("Sticky-Pop-Version", "1")
		out = append(out, m)
	}
	return out, nil
}

func (s *Service) publish(ctx context.Context, m *nats.Msg) error {
	backoff := 50 * time.Millisecond
	for {
		if err := s.waitReady(ctx); err != nil {
			return fmt.Errorf("screenpop: NATS not available before the deadline: %w", err)
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := s.js.PublishMsg(actx, m, jetstream.WithExpectStream(StreamName))
		cancel()
		if err == nil {
			if ack.Duplicate {
				s.count("pop_duplicate")
			}
			return nil
		}
		if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
			return fmt.Errorf("screenpop: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("screenpop: not acknowledged before the deadline: %w", err)
		}
		s.count("pop_retry")
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
			(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound) {
			s.streamMissing(err)
		}
		s.log.Debug("screen-pop publish failed; retrying", "subject", m.Subject, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("screenpop: not acknowledged before the deadline: %w", err)
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}
