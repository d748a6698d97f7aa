package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// natsUser is one user of a test users file, with its plain password.
type natsUser struct {
	name, password, role, extra string
}

// usersFile writes a users file of users, with their passwords hashed.
func usersFile(t *testing.T, users ...natsUser) string {
	t.Helper()
	out := "users:\n"
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("  - user: %s\n    password: %q\n    role: %s\n%s", u.name, h, u.role, u.extra)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectAs connects to url as user, with the client options the SDK
// documents (natsauth), and fails the test if the server refuses.
func connectAs(t *testing.T, url string, u natsUser) *nats.Conn {
	t.Helper()
	opts, err := natsauth.ClientOptions{User: u.name, Password: u.password}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", u.name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// refused runs do and wants it refused: an error, and the server's
// permissions violation for denied, the subject do publishes to.
func refused(t *testing.T, nc *nats.Conn, what, denied string, do func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := do(ctx); err == nil {
		t.Errorf("%s: allowed", what)
		return
	}
	harness.Eventually(t, 5*time.Second, func() error {
		if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+denied+`"`) {
			return fmt.Errorf("%s: last error %v, want a permissions violation for %s", what, err, denied)
		}
		return nil
	})
}

// With a users file the embedded server enforces the roles: a producer
// publishes deltas only under its own name and to its own nodes, reads and
// administers nothing; a node credential publishes no other node's
// snapshots or checkpoints; and nothing refused reaches the stream, so
// nothing is counted. The node itself works whatever the file says.
func TestNATSPermissions(t *testing.T) {
	billing := natsUser{"billing", "billing-pw", "producer", "    owners: [billing]\n    nodes: [n1]\n"}
	other := natsUser{"n2", "node-pw", "node", "    node: n2\n"}
	admin := natsUser{"ops", "ops-pw", "admin", ""}
	rn := harness.StartNode(t, node.Config{Name: "n1", NATSUsersFile: usersFile(t, billing, other, admin)})

	if _, err := nats.Connect(rn.NATSURL()); err == nil {
		t.Fatal("connected without credentials")
	}

	nc := connectAs(t, rn.NATSURL(), billing)
	p, err := producers.New(producers.Config{Node: "n1", Name: "billing", FlushInterval: time.Hour}, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	c, _ := p.NewCounter(producers.Opts{Name: "billing_events_total", Help: "events"})
	c.Add(3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("the producer's own publish: %v", err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj := streams.Subjects{}
	forged := func(subject, producer string) func(context.Context) error {
		return func(ctx context.Context) error {
			msg := nats.NewMsg(subject)
			msg.Data = fmt.Appendf(nil, `{"v":1,"node":"n1","producer":%q,"seq":1,"metrics":[{"name":"forged_total","type":"counter","value":1e15}]}`, producer)
			_, err := js.PublishMsg(ctx, msg)
			return err
		}
	}
	refused(t, nc, "another node's subject", subj.OwnedDelta("n2", "billing", "billing-x"), forged(subj.OwnedDelta("n2", "billing", "billing-x"), "billing-x"))
	refused(t, nc, "another owner's subject", subj.OwnedDelta("n1", "payments", "payments-x"), forged(subj.OwnedDelta("n1", "payments", "payments-x"), "payments-x"))
	refused(t, nc, "the legacy subject", subj.Delta("n1", "payments-x"), forged(subj.Delta("n1", "payments-x"), "payments-x"))
	apiRequest := func(subject string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, subject, nil)
			return err
		}
	}
	refused(t, nc, "stream info", "$JS.API.STREAM.INFO.JETMETRICS_DELTAS", apiRequest("$JS.API.STREAM.INFO.JETMETRICS_DELTAS"))
	refused(t, nc, "purge", "$JS.API.STREAM.PURGE.JETMETRICS_DELTAS", apiRequest("$JS.API.STREAM.PURGE.JETMETRICS_DELTAS"))
	refused(t, nc, "delete", "$JS.API.STREAM.DELETE.JETMETRICS_DELTAS", func(ctx context.Context) error { return js.DeleteStream(ctx, "JETMETRICS_DELTAS") })
	refused(t, nc, "consumer create", "$JS.API.CONSUMER.CREATE.JETMETRICS_DELTAS", apiRequest("$JS.API.CONSUMER.CREATE.JETMETRICS_DELTAS"))
	refused(t, nc, "snapshot", subj.Snapshot("n1"), func(ctx context.Context) error {
		_, err := js.Publish(ctx, subj.Snapshot("n1"), []byte("{}"))
		return err
	})

	nodeNC := connectAs(t, rn.NATSURL(), other)
	nodeJS, err := jetstream.New(nodeNC)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, nodeNC, "a node's snapshot of another", subj.Snapshot("n1"), func(ctx context.Context) error {
		_, err := nodeJS.Publish(ctx, subj.Snapshot("n1"), []byte("{}"))
		return err
	})
	refused(t, nodeNC, "a node's checkpoint of another", subj.Checkpoint("n1"), func(ctx context.Context) error {
		_, err := nodeJS.Publish(ctx, subj.Checkpoint("n1"), []byte("{}"))
		return err
	})
	refused(t, nodeNC, "a node purging", "$JS.API.STREAM.PURGE.JETMETRICS_SNAP", func(ctx context.Context) error {
		s, err := nodeJS.Stream(ctx, "JETMETRICS_SNAP")
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})

	// The producer's batch is counted, and it is all the stream holds.
	harness.Eventually(t, 30*time.Second, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		s := harness.Samples(fams)
		if s["billing_events_total"] != 3 {
			return fmt.Errorf("billing_events_total = %v, want 3", s["billing_events_total"])
		}
		if _, ok := fams["forged_total"]; ok {
			return errors.New("forged_total is on /metrics")
		}
		return nil
	})
	adminJS, err := jetstream.New(connectAs(t, rn.NATSURL(), admin))
	if err != nil {
		t.Fatal(err)
	}
	st, err := adminJS.Stream(ctx, "JETMETRICS_DELTAS")
	if err != nil {
		t.Fatalf("admin stream info: %v", err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("the delta stream holds %d messages, want the producer's 1", n)
	}
}

// A node whose NATS is someone else's, connecting with a node credential
// only (--nats.url, --nats.user, --nats.password-file): it may not create
// streams, so it uses the ones an admin made, consumes its own deltas and
// publishes its snapshots within its permissions, and becomes ready and
// counts what a producer credential sends it. The other node's embedded
// server, with the users file, stands in for the external NATS.
func TestNodeWithNodeCredential(t *testing.T) {
	billing := natsUser{"billing", "billing-pw", "producer", "    owners: [billing]\n    nodes: [n2]\n"}
	n2 := natsUser{"n2", "node-pw", "node", "    node: n2\n"}
	external := harness.StartNode(t, node.Config{Name: "n1", NATSUsersFile: usersFile(t, billing, n2)})

	pwFile := filepath.Join(t.TempDir(), "n2.password")
	if err := os.WriteFile(pwFile, []byte(n2.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rn := harness.StartNode(t, node.Config{Name: "n2", NATSURL: external.NATSURL(), NATSUser: n2.name, NATSPasswordFile: pwFile})

	p, err := producers.New(producers.Config{Node: "n2", Name: "billing", FlushInterval: time.Hour}, connectAs(t, external.NATSURL(), billing))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	c, _ := p.NewCounter(producers.Opts{Name: "billing_events_total", Help: "events"})
	c.Add(5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		s := harness.Samples(fams)
		if s["billing_events_total"] != 5 {
			return fmt.Errorf("n2: billing_events_total = %v, want 5", s["billing_events_total"])
		}
		// n2's snapshot reached n1: its node credential may publish it.
		fams, err = harness.Scrape(external.URL + "/metrics/cluster")
		if err != nil {
			return err
		}
		cs := harness.Samples(fams)
		if cs[`billing_events_total{node="n2"}`] != 5 {
			return fmt.Errorf("n1's cluster view: billing_events_total{node=\"n2\"} = %v, want 5", cs[`billing_events_total{node="n2"}`])
		}
		return nil
	})
}
