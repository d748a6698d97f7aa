package natsauth_test

import (
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
)

const hash = "$2a$11$abcdefghijklmnopqrstuu7SxQnTg1L8sEpVwwfTE8E5eRPd0YV7e"

// A users file is decoded strictly: each mistake is an error naming its
// line and key, and a password that is not a hash is never quoted.
func TestDecodeUsers(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"valid", "users:\n  - user: b\n    password: " + hash + "\n    role: producer\n    owners: [billing]\n  - user: n\n    nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4\n    role: node\n    node: a\n", ""},
		{"unknown key", "users:\n  - user: b\n    passwd: x\n", `line 3: unknown key "passwd"`},
		{"unknown top key", "user:\n  - user: b\n", "line 1: field user not found"},
		{"plain password", "users:\n  - user: b\n    password: hunter2\n    role: admin\n", `line 2: user "b": key "password": not a bcrypt hash`},
		{"seed for nkey", "users:\n  - user: b\n    nkey: SUAK\n    role: admin\n", `key "nkey"`},
		{"no role", "users:\n  - user: b\n    password: " + hash + "\n", `key "role"`},
		{"producer without owners", "users:\n  - user: b\n    password: " + hash + "\n    role: producer\n", `key "owners"`},
		{"node without its name", "users:\n  - user: b\n    password: " + hash + "\n    role: node\n", `key "node"`},
		{"owner not a token", "users:\n  - user: b\n    password: " + hash + "\n    role: producer\n    owners: [a.b]\n", `"a.b"`},
		{"twice", "users:\n  - user: b\n    password: " + hash + "\n    role: admin\n  - user: b\n    password: " + hash + "\n    role: admin\n", "line 5: user \"b\" is already defined on line 2"},
		{"owners of a string", "users:\n  - user: b\n    password: " + hash + "\n    role: producer\n    owners: hunter2\n", "line 5"},
		{"empty", "", "no users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsauth.DecodeUsers([]byte(tc.file))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("error quotes the password: %v", err)
			}
		})
	}
}
