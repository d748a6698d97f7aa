package main

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const configDoc = "../../docs/configuration.md"

// checkFlagsDoc returns "" when doc's generated section is what the code
// renders, else what differs and how to fix it.
func checkFlagsDoc(t *testing.T, doc string) string {
	t.Helper()
	want, err := renderFlagsDoc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := currentSection(doc)
	if err != nil {
		return err.Error() + "; then run " + docsUpdateHint
	}
	if got == want {
		return ""
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			return "the flag tables differ from the code; first difference in line " + strconv.Itoa(i+1) +
				" of the section:\n  doc:  " + g + "\n  code: " + w + "\nrun " + docsUpdateHint + " to update"
		}
	}
	return "the flag tables differ from the code; run " + docsUpdateHint + " to update"
}

func TestDocsFlagsUpToDate(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	if msg := checkFlagsDoc(t, string(doc)); msg != "" {
		t.Fatalf("%s: %s", configDoc, msg)
	}
}

// The check fails on a doc that misses a flag, or has a stale default,
// and names the line and the command to run.
func TestDocsFlagsCheckCatchesDrift(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name, stale := range map[string]string{
		"flag removed":    regexp.MustCompile("(?m)^\\| `--demo\\.interval`.*\n").ReplaceAllString(string(doc), ""),
		"default changed": strings.Replace(string(doc), "| `JETMETRICS_LOG_LEVEL` | `info` |", "| `JETMETRICS_LOG_LEVEL` | `debug` |", 1),
		"no markers":      strings.Replace(string(doc), flagsBegin, "", 1),
	} {
		if stale == string(doc) {
			t.Fatalf("%s: the edit did not apply to %s", name, configDoc)
		}
		msg := checkFlagsDoc(t, stale)
		if msg == "" || !strings.Contains(msg, docsUpdateHint) {
			t.Errorf("%s: check says %q, want a failure telling to run %q", name, msg, docsUpdateHint)
		}
	}
}

// Every flag of the node is in the generated tables, with its variable.
func TestDocsFlagsNameEveryFlag(t *testing.T) {
	section, err := renderFlagsDoc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fset, err := commandFlags(context.Background(), "node")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fset.VisitAll(func(f *flag.Flag) {
		n++
		row := "| `--" + f.Name + "` | `" + envName(f.Name) + "` |"
		if !strings.Contains(section, row) {
			t.Errorf("no row starting %q", row)
		}
	})
	if n < 40 {
		t.Errorf("node has %d flags, want the full set (40+): was -h intercepted too early?", n)
	}
	for _, f := range []string{"node.name", "web.listen-address", "log.level", "check-config"} {
		if fset.Lookup(f) == nil {
			t.Errorf("recorded flag set has no --%s", f)
		}
	}
	// The host name is not written as the default: docs generated on two
	// machines must agree.
	if strings.Contains(section, "| `--node.name` | `JETMETRICS_NODE_NAME` | `") {
		t.Errorf("--node.name's default is rendered as a value: %q", section)
	}
}

// -h still prints the help to a real writer: the recorder hook only
// takes a flagSetRecorder.
func TestNodeHelpStillPrints(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"node", "-h"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "--web.listen-address  [JETMETRICS_WEB_LISTEN_ADDRESS]") {
		t.Fatalf("help = %q", stdout.String())
	}
}

// Every JETMETRICS_* variable the code names as a string is a flag's
// twin or in envOnly (so in the doc), and every envOnly variable is read.
func TestDocsEnvOnlyComplete(t *testing.T) {
	fset, err := commandFlags(context.Background(), "node")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	fset.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	only := map[string]bool{}
	for _, e := range envOnly {
		only[e.name] = true
	}
	lit := regexp.MustCompile(`"(JETMETRICS_[A-Z0-9_]+)"`)
	seen := map[string]bool{}
	root := "../.."
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "tests" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			seen[m[1]] = true
			if !known[m[1]] && !only[m[1]] {
				t.Errorf("%s names %s, which is no flag's twin: add it to envOnly in cmd/jetmetrics/docs_cmd.go and run %s", path, m[1], docsUpdateHint)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range only {
		if !seen[name] {
			t.Errorf("envOnly lists %s, which no code names: remove it", name)
		}
	}
}

func TestDocsUpdateRewritesOnlyTheSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.md")
	before := "# Title\n\nintro\n\n" + flagsBegin + "\nstale\n" + flagsEnd + "\n\n## After\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"docs", "flags", "--update", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want, _ := renderFlagsDoc(context.Background())
	if string(got) != "# Title\n\nintro\n\n"+flagsBegin+"\n"+want+flagsEnd+"\n\n## After\n" {
		t.Fatalf("updated file:\n%s", got)
	}
	// Without markers the file is left alone and the error says what to add.
	if err := os.WriteFile(path, []byte("# no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"docs", "flags", "--update", path}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), flagsBegin) {
		t.Fatalf("error = %v, want one naming %s", err, flagsBegin)
	}
	if got, _ := os.ReadFile(path); string(got) != "# no markers\n" {
		t.Fatalf("file changed: %q", got)
	}
}

// The README's flag table is a summary: every flag it names exists, and
// every default it gives as a value is the code's.
func TestReadmeFlagDefaults(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "docs/configuration.md#flags-and-environment-variables") {
		t.Error("README does not point to docs/configuration.md#flags-and-environment-variables")
	}
	fset, err := commandFlags(context.Background(), "node")
	if err != nil {
		t.Fatal(err)
	}
	flagRE := regexp.MustCompile("`--([a-z0-9.-]+)`")
	valRE := regexp.MustCompile("^`([^`]*)`")
	rows := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		rows++
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			t.Errorf("README row %q: want | flag | default | meaning |", line)
			continue
		}
		var names []string
		for _, m := range flagRE.FindAllStringSubmatch(cells[0], -1) {
			if fset.Lookup(m[1]) == nil {
				t.Errorf("README names --%s, which jetmetrics node does not have", m[1])
				continue
			}
			names = append(names, m[1])
		}
		def := strings.TrimSpace(cells[1])
		if def == "" || len(names) == 0 {
			continue
		}
		parts := []string{def}
		if len(names) > 1 {
			parts = strings.Split(def, ", ")
			if len(parts) != len(names) {
				t.Errorf("README row for %v gives %d defaults: want one per flag", names, len(parts))
				continue
			}
		}
		for i, name := range names {
			p := strings.TrimSpace(parts[i])
			var v string
			switch m := valRE.FindStringSubmatch(p); {
			case m != nil:
				v = m[1]
			case p == "off":
				v = "false"
			case p == "on":
				v = "true"
			default:
				continue // prose, e.g. "host name", "(embedded)"
			}
			f := fset.Lookup(name)
			if err := f.Value.Set(v); err != nil {
				t.Errorf("README gives --%s the default %q, which does not parse: %v", name, v, err)
				continue
			}
			if got := f.Value.String(); got != f.DefValue {
				t.Errorf("README gives --%s the default %q; the code's is %q", name, v, f.DefValue)
			}
			_ = f.Value.Set(f.DefValue)
		}
	}
	if rows < 20 {
		t.Errorf("found %d flag rows in the README, want its flag table", rows)
	}
}
