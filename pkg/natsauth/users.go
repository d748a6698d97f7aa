package natsauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"
)

// Role is what a user of the users file may do (docs/security.md).
type Role string

// The roles.
const (
	// RoleProducer publishes deltas under the names it owns to the nodes
	// it may, and reads nothing.
	RoleProducer Role = "producer"
	// RoleNode is a jetmetrics node: its own snapshots and checkpoints,
	// dead letters, observations, leases, and consuming the streams.
	RoleNode Role = "node"
	// RoleAdmin may do everything, creating and deleting streams too.
	RoleAdmin Role = "admin"
)

// Any in Owners or Nodes means every name.
const Any = "*"

// User is one entry of the users file.
type User struct {
	// Name identifies the user: its login with Password, a label with
	// Nkey. A producer's reply inbox is _INBOX.<Name>.
	Name string `yaml:"user"`
	// Password is a bcrypt hash ("$2a$…", e.g. from `nats server passwd`
	// or `htpasswd -bnBC 11 "" secret | tr -d ':\n'`), never the password.
	Password string `yaml:"password"`
	// Nkey is the user's public nkey (U…), authenticating by signature.
	Nkey string `yaml:"nkey"`
	Role Role   `yaml:"role"`
	// Owners are the producer names a producer may publish under (Any:
	// all); required for a producer.
	Owners []string `yaml:"owners"`
	// Nodes are the nodes a producer may publish to; default Any.
	Nodes []string `yaml:"nodes"`
	// Node is a node user's own node name; required for a node.
	Node string `yaml:"node"`

	line int
}

// Line is the line of the users file the entry starts on.
func (u User) Line() int { return u.line }

// Users is a decoded users file.
type Users struct {
	Users []User `yaml:"users"`
}

// LoadUsers reads and checks the users file at path. Errors name the
// file, the line and the key at fault; they never quote a password.
func LoadUsers(path string) (Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Users{}, err
	}
	us, err := DecodeUsers(b)
	if err != nil {
		return Users{}, fmt.Errorf("%s: %w", path, err)
	}
	return us, nil
}

// DecodeUsers decodes and checks a users file; unknown keys are errors.
func DecodeUsers(b []byte) (Users, error) {
	var us Users
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&us); err != nil && !errors.Is(err, io.EOF) {
		return Users{}, redactYAML(err)
	}
	if len(us.Users) == 0 {
		return Users{}, errors.New(`no users: want "users:" and a list of entries`)
	}
	seen := map[string]int{}
	for _, u := range us.Users {
		if err := u.check(); err != nil {
			return Users{}, fmt.Errorf("line %d: %w", u.line, err)
		}
		if prev, ok := seen[u.Name]; ok {
			return Users{}, fmt.Errorf("line %d: user %q is already defined on line %d", u.line, u.Name, prev)
		}
		seen[u.Name] = u.line
	}
	return us, nil
}

// knownKeys are the keys of a user entry.
var knownKeys = []string{"user", "password", "nkey", "role", "owners", "nodes", "node"}

// UnmarshalYAML decodes one entry, refusing unknown keys with their line
// (the decoder's KnownFields does not reach a custom unmarshaller).
func (u *User) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a user is a mapping of %s", n.Line, strings.Join(knownKeys, ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(knownKeys, k.Value) {
			return fmt.Errorf("line %d: unknown key %q: want %s", k.Line, k.Value, strings.Join(knownKeys, ", "))
		}
	}
	type plain User
	var p plain
	if err := n.Decode(&p); err != nil {
		return redactYAML(err)
	}
	*u = User(p)
	u.line = n.Line
	return nil
}

func (u User) check() error {
	if u.Name == "" {
		return errors.New(`key "user": missing: every entry has a name`)
	}
	if strings.ContainsAny(u.Name, " \t.*>") {
		return fmt.Errorf(`key "user": %q: no white space, ".", "*" or ">" (it is a subject token of the reply inbox)`, u.Name)
	}
	switch {
	case u.Password == "" && u.Nkey == "":
		return fmt.Errorf(`user %q: set "password" (a bcrypt hash) or "nkey" (a public user nkey)`, u.Name)
	case u.Password != "" && u.Nkey != "":
		return fmt.Errorf(`user %q: "password" and "nkey" exclude each other`, u.Name)
	case u.Password != "" && !strings.HasPrefix(u.Password, "$2"):
		// Never quote it: it is likely the password itself.
		return fmt.Errorf(`user %q: key "password": not a bcrypt hash ("$2a$…"): store the hash (nats server passwd), never the password`, u.Name)
	case u.Nkey != "" && !nkeys.IsValidPublicUserKey(u.Nkey):
		return fmt.Errorf(`user %q: key "nkey": not a public user nkey (U…; never the seed)`, u.Name)
	}
	switch u.Role {
	case RoleProducer:
		if len(u.Owners) == 0 {
			return fmt.Errorf(`user %q: key "owners": a producer needs the producer names it may publish under, or "*"`, u.Name)
		}
		if u.Node != "" {
			return fmt.Errorf(`user %q: key "node" is for role node; a producer has "nodes"`, u.Name)
		}
		for _, o := range append(slices.Clone(u.Owners), u.Nodes...) {
			if err := checkToken(o); err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
		}
	case RoleNode:
		if err := checkToken(u.Node); err != nil || u.Node == Any {
			return fmt.Errorf(`user %q: key "node": a node user needs its node's name`, u.Name)
		}
		if len(u.Owners) > 0 || len(u.Nodes) > 0 {
			return fmt.Errorf(`user %q: keys "owners" and "nodes" are for role producer`, u.Name)
		}
	case RoleAdmin:
		if len(u.Owners) > 0 || len(u.Nodes) > 0 || u.Node != "" {
			return fmt.Errorf(`user %q: an admin may do everything: drop "owners", "nodes" and "node"`, u.Name)
		}
	default:
		return fmt.Errorf(`user %q: key "role": %q: want producer, node or admin`, u.Name, u.Role)
	}
	return nil
}

// ProducerNodes is Nodes, or Any when none are listed.
func (u User) ProducerNodes() []string {
	if len(u.Nodes) == 0 {
		return []string{Any}
	}
	return u.Nodes
}

// checkToken accepts Any or a subject token of [A-Za-z0-9_-].
func checkToken(s string) error {
	if s == Any {
		return nil
	}
	if s == "" || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) >= 0 {
		return fmt.Errorf("%q is not a name of [A-Za-z0-9_-] (1 to 64 bytes) nor \"*\"", s)
	}
	return nil
}

// redactYAML keeps a decoder error from quoting a value, which may be a
// secret: yaml.v3 quotes the value it could not decode.
func redactYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			if j := strings.Index(m, " `"); j >= 0 {
				m = m[:j] + " (value not shown)"
			}
			msgs[i] = m
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}
