package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
)

const statusUsage = `usage: jetmetrics status [--web.url=http://127.0.0.1:9480] [--output=json]

The cluster at a glance from any node: its readiness (/-/ready) and what
it reads live from JetStream and Redis (/api/v1/status): the services
whose last probe failed, the volumes with their leader, last poll and
its age (stale or failing ones first; at most 200, the rest counted), the
nodes with their snapshot age and aggregator lag (deltas in the stream
for the node after the last one it applied),
the streams with their replicas, leader and lagging followers, the dead
letters by reason, and who leads each observer target. A table, or with
--output=json the same as one JSON object (its "problems" are why the
exit code is 1).

A node with basic auth in its --web.config.file: --web.username and
--web.password-file (or JETMETRICS_WEB_PASSWORD); with TLS signed by a
private CA: --web.url=https://... and --web.ca-file. The password is sent
over http:// only to a loopback --web.url (127.0.0.0/8, ::1, localhost),
or with --web.insecure-plaintext-auth, and never after a redirect from
https:// to http://.

example:
  jetmetrics status --web.url=https://node-1:9480 --web.ca-file=ca.pem \
    --web.username=ops --web.password-file=/run/secrets/web --output=json

exit codes:
  0  the node is ready and every stream has a leader and current followers
  1  a problem: the node is not ready; a stream has no leader, cannot be
     read, or has a follower that is not current or offline; a section of
     /api/v1/status could not be computed; the node refused the
     credentials (HTTP 401/403); or it redirected a request carrying
     the password from https:// to http:// (not followed). Services down, volumes stale or failing,
     aggregator lag and peers down are shown but do not change the exit
     code (the alert rules watch them over time).
  2  usage error
  3  the node was not reached within --timeout
`

// statusReport is what status shows; --output=json writes it as is: the
// node's readiness, then /api/v1/status's sections, decoded as they come.
type statusReport struct {
	URL       string   `json:"url"`
	Ready     bool     `json:"ready"`
	Readiness []string `json:"readiness"`
	Problems  []string `json:"problems"`
	// Errors (in the node's answer) also has "status" when the endpoint
	// itself failed.
	node.ClusterStatus
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	web := addWebFlags(fs)
	output := fs.String("output", "table", "output format: table or json")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the node's answers")
	rest, err := parseCommand(fs, args, stdout, statusUsage, false)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (flags are --name=value)", rest[0])}
	}
	if *output != "table" && *output != "json" {
		return flagError("output", *output, "want table or json")
	}
	if *timeout <= 0 {
		return flagError("timeout", timeout.String(), "want a positive duration")
	}
	c, err := web.client(stderr)
	if err != nil {
		return err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep := statusReport{URL: c.base}
	body, code, err := c.get(ctx, "/-/ready", "", 1<<20)
	switch {
	case refused(err):
		return err
	case err != nil:
		return codedError{exitUnreachable, fmt.Errorf("node at --web.url=%s not reached: %v", web.url, err)}
	}
	rep.Ready = code == http.StatusOK
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			rep.Readiness = append(rep.Readiness, l)
		}
	}
	if err := c.getJSON(ctx, "/api/v1/status", &rep); err != nil {
		if refused(err) {
			return err
		}
		rep.Errors = map[string]string{"status": err.Error()}
	}
	rep.Problems = statusProblems(rep)
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeStatusTable(stdout, rep)
	}
	if len(rep.Problems) > 0 {
		more := ""
		if len(rep.Problems) > 1 {
			more = fmt.Sprintf(" (and %d more problems)", len(rep.Problems)-1)
		}
		return fmt.Errorf("%s%s", rep.Problems[0], more)
	}
	return nil
}

// statusProblems are the reasons for exit code 1, in the order of the
// help's list.
func statusProblems(rep statusReport) []string {
	out := []string{}
	if !rep.Ready {
		who := "node"
		if rep.Node != "" {
			who += " " + rep.Node
		}
		out = append(out, fmt.Sprintf("%s at %s is not ready: %s", who, rep.URL, firstLine(rep.Readiness)))
	}
	for _, s := range rep.Streams {
		switch {
		case s.Absent:
		case s.Error != "":
			out = append(out, fmt.Sprintf("stream %s: %s", s.Name, s.Error))
		case s.Leader == "":
			out = append(out, fmt.Sprintf("stream %s has no leader", s.Name))
		case s.Lagging > 0:
			var names []string
			for _, p := range s.Peers {
				if !p.Current || p.Offline {
					names = append(names, p.Name)
				}
			}
			out = append(out, fmt.Sprintf("stream %s: replica %s not current", s.Name, strings.Join(names, ", ")))
		}
	}
	for _, name := range []string{"status", "nodes", "streams", "dead_letters", "observer_leaders", "services", "volumes"} {
		if e, ok := rep.Errors[name]; ok && name != "streams" { // stream errors are listed by stream above
			out = append(out, fmt.Sprintf("%s: %s", name, e))
		}
	}
	return out
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
	fmt.Fprintf(tw, "node %s at %s: %s\n", dash(rep.Node), rep.URL, state)
	for _, l := range rep.Readiness {
		fmt.Fprintf(tw, "  %s\n", l)
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(tw, "\nPROBLEMS\n")
		for _, p := range rep.Problems {
			fmt.Fprintf(tw, "  %s\n", p)
		}
	}
	fmt.Fprintf(tw, "\nSERVICE DOWN\tLEADER\tLAST SUCCESS\tFAILURES\tLAST ERROR\n")
	if len(rep.ServicesDown) == 0 {
		fmt.Fprintf(tw, "(none)\n")
	}
	for _, s := range rep.ServicesDown {
		since := "never"
		if s.LastSuccess != nil {
			since = time.Since(*s.LastSuccess).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Service, dash(s.Leader), since, s.Failures, dash(s.LastError))
	}
	fmt.Fprintf(tw, "\nVOLUME\tLEADER\tSTATUS\tAGE\tLAST ERROR\n")
	if len(rep.Volumes) == 0 {
		fmt.Fprintf(tw, "(none)\n")
	}
	for _, v := range rep.Volumes {
		state := dash(v.Status)
		if v.Stale {
			state += " (stale)"
		}
		leader := v.Leader
		if leader == "" {
			leader = "(vacant)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Volume, leader, state, age(v.AgeSeconds), dash(v.LastError))
	}
	if rep.VolumesMore > 0 {
		fmt.Fprintf(tw, "  and %d more volumes\n", rep.VolumesMore)
	}
	if rep.VolumesUnhealthy > 0 {
		fmt.Fprintf(tw, "  %d of %d volumes stale or failing\n", rep.VolumesUnhealthy, len(rep.Volumes)+rep.VolumesMore)
	}
	fmt.Fprintf(tw, "\nNODE\tROLE\tUP\tSNAPSHOT AGE\tAPPLIED SEQ\tAGGREGATOR LAG\n")
	for _, n := range rep.Nodes {
		lag := "? (" + n.LagError + ")"
		if n.LagMessages != nil {
			lag = strconv.FormatUint(*n.LagMessages, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.Role, yesNo(n.Up), age(n.SnapshotAgeSeconds), n.AppliedSeq, lag)
	}
	fmt.Fprintf(tw, "\nSTREAM\tREPLICAS\tLEADER\tLAGGING\tMESSAGES\tBYTES\n")
	for _, s := range rep.Streams {
		switch {
		case s.Absent:
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t(not made yet: no observer ran)\n", s.Name)
			continue
		case s.Error != "":
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\terror: %s\n", s.Name, s.Error)
			continue
		}
		lagging := "none"
		if s.Lagging > 0 {
			var l []string
			for _, p := range s.Peers {
				if p.Offline {
					l = append(l, p.Name+" offline")
				} else if !p.Current {
					l = append(l, fmt.Sprintf("%s (%d behind)", p.Name, p.Lag))
				}
			}
			lagging = strings.Join(l, ", ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", s.Name, s.Replicas, dash(s.Leader), lagging, s.Messages, byteSize(s.Bytes, s.MaxBytes))
	}
	fmt.Fprintf(tw, "\nDEAD LETTERS BY REASON\tMESSAGES\n")
	if len(rep.DeadLetters) == 0 {
		fmt.Fprintf(tw, "(none)\n")
	}
	for _, d := range rep.DeadLetters {
		fmt.Fprintf(tw, "%s\t%d\n", d.Reason, d.Messages)
	}
	if len(rep.ObserverLeaders) > 0 {
		fmt.Fprintf(tw, "\nOBSERVER\tTARGET\tLEADER\n")
		for _, l := range rep.ObserverLeaders {
			leader := l.Leader
			if leader == "" {
				leader = "(vacant)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Observer, l.Target, leader)
		}
		if rep.LeadersNote != "" {
			fmt.Fprintf(tw, "  %s\n", rep.LeadersNote)
		}
	}
	tw.Flush()
}

// byteSize is "bytes / max" in binary units, or bytes alone when
// unlimited.
func byteSize(b uint64, limit int64) string {
	if limit <= 0 {
		return iec(float64(b))
	}
	return fmt.Sprintf("%s / %s (%.0f%%)", iec(float64(b)), iec(float64(limit)), 100*float64(b)/float64(limit))
}

func iec(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
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
