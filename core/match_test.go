package core_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
)

func TestBadModelSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		set  func(*core.Model)
		want string
	}{
		{func(m *core.Model) { m.Phone.M = 1.2 }, "phone_m"},
		{func(m *core.Model) { m.Email.U = -0.01 }, "email_u"},
		{func(m *core.Model) { m.ExternalID.U = 0.99 }, "external_id_u"},
		{func(m *core.Model) { m.RecencyBits = -1 }, "recency_bits"},
		{func(m *core.Model) { m.Reuse, m.Confirm = 0.2, 0.3 }, "reuse_threshold"},
		{func(m *core.Model) { m.Confirm = 0 }, "confirm_threshold"},
		{func(m *core.Model) { m.PriorBits = 100 }, "prior_bits"},
		{func(m *core.Model) { m.StalePenaltyBits = -3 }, "stale_penalty_bits"},
		{func(m *core.Model) { m.StaleAfter = -time.Hour }, "stale_after"},
		{func(m *core.Model) { m.AttestationFailedPenaltyBits = 1 }, "attestation_failed_penalty_bits"},
		{func(m *core.Model) { m.SharedCap = 64 }, "shared_cap"},
	} {
		m := core.DefaultModel()
		tc.set(&m)
		var me *core.ModelError
		if err := m.Validate(); !errors.As(err, &me) || me.Setting != tc.want {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
	if err := core.DefaultModel().Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
}
