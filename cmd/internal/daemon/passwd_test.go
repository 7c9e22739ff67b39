package daemon

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	if code := HashPassword(strings.NewReader("s3cret-pass\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret-pass")); err != nil {
		t.Fatalf("%q is not a hash of the password: %v", h, err)
	}
	if strings.Contains(out.String()+errb.String(), "s3cret") {
		t.Fatal("the password was printed")
	}
	for _, in := range []string{"", "\n", strings.Repeat("x", 73) + "\n"} {
		out.Reset()
		errb.Reset()
		if code := HashPassword(strings.NewReader(in), &out, &errb); code != 2 || out.Len() != 0 || errb.Len() == 0 {
			t.Errorf("input %q: exit %d, out %q, err %q; want 2 with a reason", in, code, out.String(), errb.String())
		}
	}
}
