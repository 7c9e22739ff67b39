// Package agentmap turns a dialled endpoint (PJSIP/1001, user/1001@domain,
// sofia/internal/1001@10.0.0.5) into the id of the agent whose phone it is.
package agentmap

import (
	"fmt"
	"regexp"
	"strings"
)

// Rule maps endpoints matching Pattern (a regular expression, matched
// against the whole endpoint) to Agent, expanded with the pattern's groups
// ($1, ${name}).
type Rule struct {
	Pattern string
	Agent   string
}

// Map is a compiled list of rules; the first match wins.
type Map struct {
	rules []compiled
}

type compiled struct {
	re    *regexp.Regexp
	agent string
}

// DefaultRules map the common endpoint shapes to their user part:
// PJSIP/1001, SIP/1001-0000002a, PJSIP/1001-00000003, user/1001@example.com,
// sofia/internal/1001@10.0.0.5, sofia/gateway/gw/1001.
var DefaultRules = []Rule{
	{Pattern: `(?i)(?:PJSIP|SIP|IAX2|Local)/([^/@;-]+)(?:[-@;].*)?`, Agent: "$1"},
	{Pattern: `(?i)user/([^/@;]+)(?:@.*)?`, Agent: "$1"},
	{Pattern: `(?i)sofia/[^/]+/(?:[^/]+/)?([^/@;]+)(?:@.*)?`, Agent: "$1"},
}

// Compile checks and compiles rules; with none it uses DefaultRules.
func Compile(rules []Rule) (*Map, error) {
	if len(rules) == 0 {
		rules = DefaultRules
	}
	m := &Map{}
	for i, r := range rules {
		if r.Pattern == "" || r.Agent == "" {
			return nil, fmt.Errorf("agent rule %d: pattern and agent are both required", i+1)
		}
		re, err := regexp.Compile(`^(?:` + r.Pattern + `)$`)
		if err != nil {
			return nil, fmt.Errorf("agent rule %d: %v", i+1, err)
		}
		m.rules = append(m.rules, compiled{re, r.Agent})
	}
	return m, nil
}

// MustCompile is Compile for rules known to be valid.
func MustCompile(rules []Rule) *Map {
	m, err := Compile(rules)
	if err != nil {
		panic(err)
	}
	return m
}

// Agent returns the agent id for endpoint, or false when no rule matches
// or the expansion is empty.
func (m *Map) Agent(endpoint string) (string, bool) {
	endpoint = strings.TrimSpace(endpoint)
	for _, r := range m.rules {
		sub := r.re.FindStringSubmatchIndex(endpoint)
		if sub == nil {
			continue
		}
		agent := string(r.re.ExpandString(nil, r.agent, endpoint, sub))
		agent = strings.TrimSpace(agent)
		if agent != "" {
			return agent, true
		}
	}
	return "", false
}
