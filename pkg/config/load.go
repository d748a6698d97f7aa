package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxFileBytes bounds a configuration file: a few thousand volumes fit
// many times over.
const maxFileBytes = 16 << 20

// Load reads the configuration file at path, decodes it strictly and
// validates it (see File.Validate). Relative paths in it (secret files,
// TLS files) are relative to the file's directory, as in Prometheus'
// configuration. Every error is one line naming the file, the line and
// the key path at fault.
func Load(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err // names the path
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return File{}, err
	}
	if len(b) > maxFileBytes {
		return File{}, &Error{File: path, Msg: fmt.Sprintf("larger than %d MiB: is it the configuration file?", maxFileBytes>>20)}
	}
	file, err := parse(path, b)
	if err != nil {
		return File{}, err
	}
	if err := file.Validate(); err != nil {
		return File{}, err
	}
	return file, nil
}

// source is where a File came from: its path and the line of each key
// path, so that Validate can name the line at fault.
type source struct {
	name  string
	lines map[string]int
}

// line is the line of key, or of the nearest enclosing key that has one.
func (s *source) line(key string) int {
	if s == nil {
		return 0
	}
	for k := key; ; k = parent(k) {
		if l, ok := s.lines[k]; ok {
			return l
		}
		if k == "" {
			return 0
		}
	}
}

// parse decodes b, the content of the file name, into a File without
// validating it.
func parse(name string, b []byte) (File, error) {
	d := &decoder{src: &source{name: name, lines: map[string]int{"": 1}}}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return File{src: d.src}, nil // empty, or comments only
		}
		return File{}, d.syntax(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return File{}, d.syntax(err)
	default:
		return File{}, errorf(name, next.Line, "", "a second YAML document: put everything in one (remove the --- line)")
	}
	var f File
	if len(doc.Content) == 1 {
		if err := d.decode(doc.Content[0], "", reflect.ValueOf(&f).Elem()); err != nil {
			return File{}, err
		}
	}
	resolvePaths(&f, filepath.Dir(name))
	f.src = d.src
	return f, nil
}

// resolvePaths makes the relative file paths in f relative to dir.
func resolvePaths(f *File, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range f.Volumes {
		v := &f.Volumes[i]
		abs(&v.Password.File)
		abs(&v.APIToken.File)
		for k, s := range v.Headers {
			abs(&s.File)
			v.Headers[k] = s
		}
		abs(&v.TLS.CAFile)
		abs(&v.TLS.CertFile)
		abs(&v.TLS.KeyFile)
	}
	for i := range f.Probes {
		t := &f.Probes[i].TLS
		abs(&t.CAFile)
		abs(&t.CertFile)
		abs(&t.KeyFile)
	}
}

// yamlError matches yaml.v3's syntax errors: "yaml: line 3: did not
// find expected key".
var yamlError = regexp.MustCompile(`(?s)^yaml: (?:line (\d+): )?(.*)$`)

// syntax turns a yaml.v3 syntax error into a one-line Error.
func (d *decoder) syntax(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlError.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return errorf(d.src.name, line, "", "not valid YAML: %s", msg)
}

// decoder walks a yaml.Node tree into a Go value, refusing anything the
// value has no place for, and records the line of every key path.
type decoder struct {
	src *source
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	observerType = reflect.TypeFor[Observer]()
	volumeType   = reflect.TypeFor[Volume]()
	probeType    = reflect.TypeFor[Probe]()
	limitsType   = reflect.TypeFor[Limits]()
)

// observerDefaults are shown when a file sets an observer setting to 0,
// which would silently mean the default.
var observerDefaults = map[string]string{
	"observe-interval": DefaultObserveInterval.String(),
	"observe-timeout":  DefaultObserveTimeout.String() + " or the interval, the shorter",
	"cache-ttl":        DefaultCacheTTL.String(),
	"history-depth":    strconv.Itoa(DefaultHistoryDepth),
	"max-concurrent":   strconv.Itoa(DefaultMaxConcurrent),
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) error {
	return errorf(d.src.name, n.Line, key, format, args...)
}

// kind names what a node holds, without its value (which may be a
// secret).
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "true or false"
		case "!!str":
			return "a string"
		}
		return "a value of type " + n.ShortTag()
	}
	return "something else"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode sets v, at key path key, from n.
func (d *decoder) decode(n *yaml.Node, key string, v reflect.Value) error {
	if n.Kind == yaml.AliasNode {
		return d.errorf(n, key, "aliases (*%s) are not supported: write the value out", n.Value)
	}
	if isNull(n) {
		return nil // as if the key were absent
	}
	t := v.Type()
	if t == secretType && n.Kind != yaml.MappingNode {
		// The value is likely the credential itself: never show it.
		return d.errorf(n, key, "an inline secret is refused: give {file: PATH} or {env: VARIABLE} (and change the credential if this file was shared)")
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			return d.errorf(n, key, "want a duration (e.g. 10s, 1m30s), got %s", kind(n))
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			return d.errorf(n, key, "%s is not a duration (e.g. 10s, 1m30s)", quote(n.Value))
		}
		if dur < 0 {
			return d.errorf(n, key, "%s is negative", n.Value)
		}
		v.SetInt(int64(dur))
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.mapping(n, key, v)
	case reflect.Slice:
		return d.sequence(n, key, v)
	case reflect.Map:
		return d.stringMap(n, key, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return d.errorf(n, key, "want a string, got %s", kind(n))
		}
		v.SetString(n.Value)
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return d.errorf(n, key, "want true or false, got %s", d.shown(n))
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return d.errorf(n, key, "want true or false, got %s", d.shown(n))
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil && n.ShortTag() == "!!float" && f == math.Trunc(f) && !strings.ContainsAny(n.Value, ".eE") {
				return d.errorf(n, key, "%s is out of range", quote(n.Value))
			}
			return d.errorf(n, key, "want a whole number, got %s", d.shown(n))
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			return d.errorf(n, key, "%s is out of range", quote(n.Value))
		}
		if i < 0 {
			return d.errorf(n, key, "%s is negative", n.Value)
		}
		v.SetInt(i)
		return nil
	}
	return d.errorf(n, key, "cannot be decoded into %s", t) // a field type this decoder lacks
}

// shown is a non-secret scalar as a message shows it: its kind and value.
func (d *decoder) shown(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return kind(n) + " " + quote(n.Value)
	}
	return kind(n)
}

// keys reads a mapping's keys, refusing a key that is not a plain
// scalar or that appears twice, and records their lines.
func (d *decoder) keys(n *yaml.Node, key string, each func(k string, kn, vn *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, key, "want a mapping (key: value lines), got %s", kind(n))
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return d.errorf(kn, key, "a key must be a plain name, got %s", kind(kn))
		}
		path := join(key, kn.Value)
		if line, dup := first[kn.Value]; dup {
			return d.errorf(kn, path, "duplicate key (first at line %d): keep one", line)
		}
		first[kn.Value] = kn.Line
		d.src.lines[path] = kn.Line
		if err := each(kn.Value, kn, vn); err != nil {
			return err
		}
	}
	return nil
}

// mapping sets the struct v from the mapping n by the fields' yaml tags.
func (d *decoder) mapping(n *yaml.Node, key string, v reflect.Value) error {
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !t.Field(i).IsExported() {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	return d.keys(n, key, func(k string, kn, vn *yaml.Node) error {
		path := join(key, k)
		i, ok := fields[k]
		if !ok {
			if _, obs := observerDefaults[k]; obs && t == volumeType {
				return d.errorf(kn, path, "unknown key: %s is set for every volume, under observers.volume", k)
			}
			if _, obs := observerDefaults[k]; (obs || k == "interval") && t == probeType {
				return d.errorf(kn, path, "unknown key: %s is set for every probe, under observers.probe (a probe's own bound is timeout)", k)
			}
			return d.errorf(kn, path, "unknown key (%s)", suggest(k, known))
		}
		fv := v.Field(i)
		if err := d.decode(vn, path, fv); err != nil {
			return err
		}
		if t == observerType && !isNull(vn) && fv.IsZero() {
			return d.errorf(vn, path, "0 would mean the default (%s): leave the key out for it, or give more than 0", observerDefaults[k])
		}
		if t == limitsType && !isNull(vn) && fv.IsZero() {
			return d.errorf(vn, path, "0 is no limit this node can keep: leave the key out for the flag's value (--limits.%s), or give more than 0", k)
		}
		if t == probeType && k == "timeout" && !isNull(vn) && fv.IsZero() {
			return d.errorf(vn, path, "0 would mean the default (observers.probe.observe-timeout): leave the key out for it, or give more than 0")
		}
		return nil
	})
}

// sequence sets the slice v from the list n.
func (d *decoder) sequence(n *yaml.Node, key string, v reflect.Value) error {
	if n.Kind != yaml.SequenceNode {
		return d.errorf(n, key, "want a list (lines starting with -), got %s", kind(n))
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("%s[%d]", key, i)
		d.src.lines[path] = item.Line
		if err := d.decode(item, path, s.Index(i)); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

// stringMap sets the map v, whose keys are strings, from the mapping n.
func (d *decoder) stringMap(n *yaml.Node, key string, v reflect.Value) error {
	m := reflect.MakeMap(v.Type())
	err := d.keys(n, key, func(k string, _, vn *yaml.Node) error {
		ev := reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(vn, join(key, k), ev); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k), ev)
		return nil
	})
	if err != nil {
		return err
	}
	v.Set(m)
	return nil
}
