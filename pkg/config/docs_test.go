package config_test

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// docs/configuration.md names every key of the file, and states the
// observer defaults the code applies.
func TestDocsNameEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !strings.Contains(doc, "`"+key+"`") {
				t.Errorf("docs/configuration.md does not name the key %s (of %s)", key, typ.Name())
			}
			walk(typ.Field(i).Type)
		}
	}
	walk(reflect.TypeFor[config.File]())

	d := config.Observer{}.WithDefaults()
	for key, def := range map[string]string{
		"observe-interval": d.ObserveInterval.String(),
		"observe-timeout":  d.ObserveTimeout.String(),
		"cache-ttl":        d.CacheTTL.String(),
		"history-depth":    strconv.FormatInt(d.HistoryDepth, 10),
		"max-concurrent":   strconv.Itoa(d.MaxConcurrent),
	} {
		row := "| `" + key + "` | `" + def + "`"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/configuration.md lacks the row %q…: the default in the code is %s", row, def)
		}
	}
}
