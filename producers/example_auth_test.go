package producers_test

import (
	"context"
	"log"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/producers"
)

// A producer of a NATS that requires credentials (docs/security.md)
// connects with natsauth's options: they authenticate it and make the
// replies arrive on _INBOX.<user>, the only subject a producer credential
// may subscribe to. Its Name must be one of the credential's owners.
func Example_credentials() {
	opts, err := natsauth.ClientOptions{User: "billing", PasswordFile: "/run/secrets/nats-billing"}.NATSOptions()
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect("nats://node-a:4222", append(opts, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))...)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	p, err := producers.New(producers.Config{Node: "node-a", Name: "billing"}, nc)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())
	invoices, _ := p.NewCounter(producers.Opts{Name: "billing_invoices_total", Help: "Invoices sent."})
	invoices.Inc()
}
