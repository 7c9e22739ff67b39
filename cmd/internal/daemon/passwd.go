package daemon

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// HashPassword is the hash-password subcommand: it reads one password from
// in (the first line) and prints its bcrypt hash, for the agents file. The
// password is never printed; exit code 2 when there is none to hash.
func HashPassword(in io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "hash-password: reading standard input:", err)
		return 2
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case pw == "":
		fmt.Fprintln(stderr, "hash-password: give the password on standard input (one line), e.g. read -rs p; echo \"$p\" | ari-bridge hash-password")
		return 2
	case len(pw) > 72:
		fmt.Fprintln(stderr, "hash-password: bcrypt uses at most 72 bytes of a password; this one is longer")
		return 2
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 12)
	if err != nil {
		fmt.Fprintln(stderr, "hash-password:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}
