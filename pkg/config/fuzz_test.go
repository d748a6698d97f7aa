package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// FuzzLoad: whatever the file holds, Load does not panic, and an error is
// one line that names the file. A file Load accepts validates again. The
// seed corpus is in testdata/fuzz/FuzzLoad, so go test runs it.
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "jetmetrics.yaml")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := config.Load(path)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error spans lines: %q", msg)
			}
			if !strings.HasPrefix(msg, path+":") {
				t.Fatalf("error does not start with the file's name: %q", msg)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Line < 0 {
				t.Fatalf("error %q is not a *config.Error with a line", msg)
			}
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Load accepted what Validate refuses: %v", err)
		}
	})
}
