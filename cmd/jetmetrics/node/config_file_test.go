package node_test

import (
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// Config.Validate checks the configuration file's content too, so that
// every caller of New, not only the command, refuses a bad one.
func TestConfigValidateChecksFile(t *testing.T) {
	cfg := node.Config{DataDir: t.TempDir(), WebListen: "127.0.0.1:0", File: config.File{
		Volumes: []config.Volume{{Name: "a", Backend: config.BackendNetApp}},
	}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "volumes[0].endpoint: required") {
		t.Fatalf("error = %v, want the volume's missing endpoint", err)
	}
	cfg.File = config.File{}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("without a file: %v", err)
	}
}
