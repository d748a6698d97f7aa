package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

const statusUsage = `usage: jetmetrics status [--web.url=http://127.0.0.1:9480] [--output=json]

The cluster at a glance from one node: its readiness (/-/ready), the nodes
it knows with their snapshot age (/api/v1/nodes), the volumes with their
leader, status and age (/api/v1/volumes) and the probed services up or
down (/api/v1/services). A table, or JSON with --output=json.

exit codes: 0 the node is ready; 1 it is not ready, or an API failed;
2 usage error; 3 the node was not reached within --timeout.
`

// statusReport is what status shows; --output=json writes it as is.
type statusReport struct {
	Node      string          `json:"node"`
	Ready     bool            `json:"ready"`
	Readiness []string        `json:"readiness"`
	Nodes     []statusNode    `json:"nodes"`
	Volumes   []statusVolume  `json:"volumes"`
	Services  []statusService `json:"services"`
	Errors    []string        `json:"errors,omitempty"`
}

type statusNode struct {
	Name       string  `json:"name"`
	Role       string  `json:"role"`
	Up         bool    `json:"up"`
	AgeSeconds float64 `json:"age_seconds"`
}

type statusVolume struct {
	Volume     string   `json:"volume"`
	Backend    string   `json:"backend"`
	Leader     string   `json:"leader"`
	Status     string   `json:"status,omitempty"`
	Error      string   `json:"error,omitempty"`
	Stale      bool     `json:"stale"`
	AgeSeconds *float64 `json:"age_seconds"`
}

type statusService struct {
	Service   string `json:"service"`
	Up        *bool  `json:"up"`
	Leader    string `json:"leader"`
	LastError string `json:"last_error,omitempty"`
}

func runStatus(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	base := fs.String("web.url", "http://127.0.0.1:9480", "base URL of a node's HTTP server")
	output := fs.String("output", "table", "output format: table or json")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the node's answers")
	if _, err := parseCommand(fs, args, stdout, statusUsage, false); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *output != "table" && *output != "json" {
		return flagError("output", *output, "want table or json")
	}
	if *timeout <= 0 {
		return flagError("timeout", timeout.String(), "want a positive duration")
	}
	if !strings.HasPrefix(*base, "http://") && !strings.HasPrefix(*base, "https://") {
		return flagError("web.url", *base, "want http://host:port or https://host:port")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := strings.TrimRight(*base, "/")
	var rep statusReport
	body, code, err := fetch(ctx, url+"/-/ready")
	if err != nil {
		return codedError{exitUnreachable, fmt.Errorf("node at --web.url=%s not reached: %v", *base, err)}
	}
	rep.Ready = code == http.StatusOK
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			rep.Readiness = append(rep.Readiness, l)
		}
	}
	var nodes struct{ Nodes []statusNode }
	var vols struct{ Volumes []statusVolume }
	var svcs struct{ Services []statusService }
	for _, api := range []struct {
		path string
		into any
	}{{"/api/v1/nodes", &nodes}, {"/api/v1/volumes", &vols}, {"/api/v1/services", &svcs}} {
		if err := fetchJSON(ctx, url+api.path, api.into); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", api.path, err))
		}
	}
	rep.Nodes, rep.Volumes, rep.Services = nodes.Nodes, vols.Volumes, svcs.Services
	for _, n := range rep.Nodes {
		if n.Role == "self" {
			rep.Node = n.Name
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeStatusTable(stdout, rep)
	}
	switch {
	case !rep.Ready:
		who := "node"
		if rep.Node != "" {
			who += " " + rep.Node
		}
		return fmt.Errorf("%s at %s is not ready: %s", who, *base, firstLine(rep.Readiness))
	case len(rep.Errors) > 0:
		return errors.New(rep.Errors[0])
	}
	return nil
}

func firstLine(lines []string) string {
	if len(lines) == 0 {
		return "/-/ready said nothing"
	}
	return lines[0]
}

func writeStatusTable(w io.Writer, rep statusReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	state := "READY"
	if !rep.Ready {
		state = "NOT READY"
	}
	fmt.Fprintf(tw, "node %s: %s\n", dash(rep.Node), state)
	for _, l := range rep.Readiness {
		fmt.Fprintf(tw, "  %s\n", l)
	}
	fmt.Fprintf(tw, "\nNODE\tROLE\tUP\tSNAPSHOT AGE\n")
	for _, n := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Role, yesNo(n.Up), age(&n.AgeSeconds))
	}
	if len(rep.Volumes) > 0 {
		fmt.Fprintf(tw, "\nVOLUME\tBACKEND\tLEADER\tSTATUS\tAGE\n")
		for _, v := range rep.Volumes {
			st := v.Status
			if v.Error != "" {
				st += " (" + v.Error + ")"
			}
			if v.Stale {
				st += " stale"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Volume, v.Backend, dash(v.Leader), dash(st), age(v.AgeSeconds))
		}
	}
	if len(rep.Services) > 0 {
		fmt.Fprintf(tw, "\nSERVICE\tUP\tLEADER\tLAST ERROR\n")
		for _, s := range rep.Services {
			up := "-"
			if s.Up != nil {
				up = yesNo(*s.Up)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Service, up, dash(s.Leader), dash(s.LastError))
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(tw, "\nerror: %s\n", e)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(sec *float64) string {
	if sec == nil {
		return "-"
	}
	return (time.Duration(*sec * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func fetch(ctx context.Context, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return b, resp.StatusCode, err
}

func fetchJSON(ctx context.Context, url string, into any) error {
	b, code, err := fetch(ctx, url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("HTTP %d: %s", code, e.Error)
	}
	return json.Unmarshal(b, into)
}
