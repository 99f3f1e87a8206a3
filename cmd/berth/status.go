package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/agent/config"
	"github.com/spf13/pflag"
)

// defaultAdminAddress is where `berth agent` serves its admin API unless told otherwise.
const defaultAdminAddress = "127.0.0.1:9900"

// now is the clock that uptimes and "ago"s are computed from; tests fix it so the
// golden files do not depend on when they run.
var now = time.Now

// adminOptions are the flags shared by every command that reads the admin API.
type adminOptions struct {
	address   string
	tokenFile string
	output    string
	timeout   time.Duration
}

// newAdminFlagSet returns the flag set of a command that reads the admin API, with
// --admin, --token-file, --output and --timeout defined; --help prints usageLine and the flags to stdout.
func newAdminFlagSet(command, usageLine string, stdout io.Writer) (*pflag.FlagSet, *adminOptions) {
	options := &adminOptions{}
	flags := pflag.NewFlagSet(command, pflag.ContinueOnError)
	// Errors are returned and printed once by main; only --help writes.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {
		fmt.Fprintf(stdout, "usage: %s\n\nflags:\n%s", usageLine, flags.FlagUsages())
	}
	defaultAddress := defaultAdminAddress
	if env := os.Getenv("BERTH_ADMIN"); env != "" {
		defaultAddress = env
	}
	flags.StringVar(&options.address, "admin", defaultAddress, "admin API of the agent, host:port or http(s)://host:port (env BERTH_ADMIN)")
	// The agent's own variable for admin.token-file: where it is set for the
	// agent, the commands find the token too.
	flags.StringVar(&options.tokenFile, "token-file", os.Getenv("BERTH_ADMIN_TOKEN_FILE"), "file holding the agent's admin token (its admin.token-file; env BERTH_ADMIN_TOKEN_FILE)")
	flags.StringVarP(&options.output, "output", "o", "table", "output format: table or json (the API's own JSON, stable for scripts)")
	flags.DurationVar(&options.timeout, "timeout", 5*time.Second, "how long to wait for the agent's answer")
	return flags, options
}

// parseAdminFlags parses args and checks the shared flags. It reports help == true when
// --help was asked for and the usage is printed: the command has nothing more to do.
func parseAdminFlags(flags *pflag.FlagSet, options *adminOptions, args []string) (help bool, err error) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("%w; run 'berth %s --help' for the flags", err, flags.Name())
	}
	if flags.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q; run 'berth %s --help' for the flags", flags.Arg(0), flags.Name())
	}
	if options.output != "table" && options.output != "json" {
		return false, fmt.Errorf("invalid --output %q: want table or json", options.output)
	}
	if options.timeout <= 0 {
		return false, fmt.Errorf("invalid --timeout %s: want a positive duration such as 5s", options.timeout)
	}
	return false, nil
}

// adminClient reads the admin API of one agent.
type adminClient struct {
	address string // as the user gave it, for messages
	baseURL string
	// authorization is the Authorization header; empty without --token-file.
	authorization string
	timeout       time.Duration
	http          *http.Client
}

func newAdminClient(options *adminOptions) (*adminClient, error) {
	baseURL, err := adminBaseURL(options.address)
	if err != nil {
		return nil, err
	}
	client := &adminClient{
		address: options.address,
		baseURL: baseURL,
		timeout: options.timeout,
		http:    &http.Client{Timeout: options.timeout},
	}
	if options.tokenFile != "" {
		token, err := config.ReadToken(options.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		client.authorization = "Bearer " + token
	}
	return client, nil
}

// adminBaseURL turns "host:port" or "http(s)://host:port[/prefix]" into the URL the API
// paths are appended to. An empty host means this host, as it does for a listen address.
func adminBaseURL(address string) (string, error) {
	invalid := fmt.Errorf("invalid admin address %q: want host:port or http://host:port (set with --admin or BERTH_ADMIN)", address)
	if strings.Contains(address, "://") {
		parsed, err := url.Parse(address)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return "", invalid
		}
		return parsed.Scheme + "://" + parsed.Host + strings.TrimRight(parsed.Path, "/"), nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil || port == "" {
		return "", invalid
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// get answers the body of a 2xx answer to GET path, and turns everything else into an
// error that says what to do.
func (c *adminClient) get(path string, query url.Values) ([]byte, error) {
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return c.do(http.MethodGet, path, nil)
}

// do sends a request (body, when not nil, is sent as JSON) and returns the
// answer's body; a non-2xx answer returns the API's error message.
func (c *adminClient) do(method, path string, body any) ([]byte, error) {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.baseURL+path, payload)
	if err != nil {
		return nil, err
	}
	if method != http.MethodGet {
		// The agent refuses a mutating call that is not declared JSON, body or not.
		req.Header.Set("Content-Type", "application/json")
	}
	if c.authorization != "" {
		req.Header.Set("Authorization", c.authorization)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cause := err
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			cause = urlErr.Err
			if urlErr.Timeout() {
				cause = fmt.Errorf("no answer within %s (raise --timeout if the agent is busy)", c.timeout)
			}
		}
		return nil, fmt.Errorf("cannot reach the agent at %s: %w; is `berth agent` running? set --admin or BERTH_ADMIN", c.address, cause)
	}
	defer resp.Body.Close()
	answerBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read the answer of the agent at %s: %w", c.address, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var answer api.Error
		if json.Unmarshal(answerBody, &answer) != nil || answer.Error == "" {
			return nil, fmt.Errorf("the agent at %s answered %s without a berth API error; is --admin pointing at a berth agent?", c.address, resp.Status)
		}
		return nil, fmt.Errorf("the agent answered %s: %s", resp.Status, answer.Error)
	}
	if resp.StatusCode != http.StatusNoContent && !json.Valid(answerBody) {
		return nil, fmt.Errorf("the answer of %s to %s is not JSON; is --admin pointing at a berth agent?", c.address, path)
	}
	return answerBody, nil
}

// decode reads a JSON document already checked by get.
func (c *adminClient) decode(path string, body []byte, document any) error {
	if err := json.Unmarshal(body, document); err != nil {
		return fmt.Errorf("the answer of %s to %s is not a berth API document (%w); are the CLI and the agent the same version?", c.address, path, err)
	}
	return nil
}

func runStatus(args []string, stdout, _ io.Writer) error {
	flags, options := newAdminFlagSet("status", "berth status [--admin ADDR] [--token-file FILE] [--output table|json] [--timeout DURATION]", stdout)
	if help, err := parseAdminFlags(flags, options, args); help || err != nil {
		return err
	}
	client, err := newAdminClient(options)
	if err != nil {
		return err
	}
	const path = "/api/v1/status"
	body, err := client.get(path, nil)
	if err != nil {
		return err
	}
	if options.output == "json" {
		_, err := stdout.Write(body)
		return err
	}
	var status api.Status
	if err := client.decode(path, body, &status); err != nil {
		return err
	}
	return writeStatus(stdout, status, now())
}

func runTargets(args []string, stdout, _ io.Writer) error {
	flags, options := newAdminFlagSet("targets", "berth targets [--group GROUP] [--admin ADDR] [--token-file FILE] [--output table|json] [--timeout DURATION]", stdout)
	group := flags.StringP("group", "g", "", "list only the targets of this group")
	if help, err := parseAdminFlags(flags, options, args); help || err != nil {
		return err
	}
	client, err := newAdminClient(options)
	if err != nil {
		return err
	}
	const path = "/api/v1/targets"
	var query url.Values
	if *group != "" {
		query = url.Values{"group": {*group}}
	}
	body, err := client.get(path, query)
	if err != nil {
		return err
	}
	if options.output == "json" {
		_, err := stdout.Write(body)
		return err
	}
	var targets []api.Target
	if err := client.decode(path, body, &targets); err != nil {
		return err
	}
	return writeTargets(stdout, targets)
}

func writeStatus(w io.Writer, status api.Status, at time.Time) error {
	summary := newTable(w)
	fmt.Fprintf(summary, "node:\t%s\n", status.Node)
	fmt.Fprintf(summary, "version:\t%s\n", status.Version)
	fmt.Fprintf(summary, "uptime:\t%s\n", formatUptime(status.Started, at))
	fmt.Fprintf(summary, "docker:\t%s\n", formatDocker(status.Docker, at))
	if status.ClusterInsecure {
		fmt.Fprintf(summary, "fleet:\tINSECURE: gossip without a key is open to other hosts (cluster.insecure); anyone who reaches it can route this node's listeners\n")
	}
	if err := summary.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(status.Listeners) == 0 {
		fmt.Fprintln(w, "no listeners")
	} else {
		listeners := newTable(w)
		fmt.Fprintln(listeners, "LISTENER\tPROTOCOL\tADDRESS\tRULES\tDEFAULT")
		for _, l := range status.Listeners {
			fmt.Fprintf(listeners, "%s\t%s\t%s\t%d\t%s\n", l.Name, l.Protocol, l.Address, len(l.Rules), orDash(l.Default))
		}
		if err := listeners.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if len(status.Groups) == 0 {
		fmt.Fprintln(w, "no target groups")
	} else {
		groups := slices.Clone(status.Groups)
		slices.SortFunc(groups, func(a, b api.Group) int { return cmp.Compare(a.Name, b.Name) })
		table := newTable(w)
		fmt.Fprintln(table, "GROUP\tTARGETS\tHEALTHY\tDRAINING\tUNHEALTHY\tIN-FLIGHT\tREQUESTS\tALGORITHM")
		for _, g := range groups {
			fmt.Fprintf(table, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", g.Name, g.Targets,
				g.States["healthy"], g.States["draining"], g.States["unhealthy"], g.InFlight, g.Requests, orDash(g.Algorithm))
		}
		if err := table.Flush(); err != nil {
			return err
		}
	}

	if len(status.Nodes) > 0 {
		fmt.Fprintln(w)
		nodes := newTable(w)
		fmt.Fprintln(nodes, "NODE\tSTATE\tADDRESS\tTARGETS\tVERSION\tCONFIG")
		for _, n := range status.Nodes {
			config := n.ConfigHash
			switch {
			case n.Self:
				config += " (this node)"
			case n.ConfigDrift:
				config += " (differs)"
			}
			state := n.State
			if n.Suspect {
				// Alive for memberlist, but it misses this node's pings: its
				// targets are avoided here.
				state = "suspect"
			}
			fmt.Fprintf(nodes, "%s\t%s\t%s\t%d\t%d/%d\t%s\n", n.Name, state, n.Address, n.Targets, n.Known, n.Seq, orDash(config))
		}
		if err := nodes.Flush(); err != nil {
			return err
		}
	}

	skipped := make([][3]string, len(status.Skipped))
	for i, s := range status.Skipped {
		skipped[i] = [3]string{s.Container, s.Name, s.Reason}
	}
	if err := writeContainers(w, "SKIPPED", skipped); err != nil {
		return err
	}
	leftOut := make([][3]string, len(status.LabelProblems))
	for i, p := range status.LabelProblems {
		leftOut[i] = [3]string{p.Container, p.Name, p.Reason}
	}
	return writeContainers(w, "LABELS LEFT OUT", leftOut)
}

// writeContainers writes a table of containers (ID, name, reason) under
// heading, and nothing when there are none.
func writeContainers(w io.Writer, heading string, containers [][3]string) error {
	if len(containers) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	table := newTable(w)
	fmt.Fprintln(table, heading+"\tNAME\tREASON")
	for _, c := range containers {
		fmt.Fprintf(table, "%s\t%s\t%s\n", shortID(c[0]), orDash(c[1]), c[2])
	}
	return table.Flush()
}

func writeTargets(w io.Writer, targets []api.Target) error {
	if len(targets) == 0 {
		_, err := fmt.Fprintln(w, "no targets")
		return err
	}
	sorted := slices.Clone(targets)
	slices.SortFunc(sorted, func(a, b api.Target) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID))
	})
	table := newTable(w)
	fmt.Fprintln(table, "GROUP\tTARGET\tADDRESS\tSTATE\tCONTAINER\tIN-FLIGHT\tREQUESTS\tFAILURES")
	for _, t := range sorted {
		address := t.Address
		if t.LocalOnly {
			address += " (local)"
		}
		state := t.State
		var avoided []string
		if t.Ejected {
			avoided = append(avoided, "ejected")
		}
		if t.Suspect {
			avoided = append(avoided, "suspect")
		}
		if len(avoided) > 0 {
			state += " (" + strings.Join(avoided, ", ") + ")"
		}
		fmt.Fprintf(table, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", t.Group, t.ID, address, state, orDash(t.Container), t.InFlight, t.Requests, t.Failures)
	}
	return table.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func formatUptime(started, at time.Time) string {
	if started.IsZero() {
		return "unknown"
	}
	return fmt.Sprintf("%s (since %s)", formatDuration(at.Sub(started)), started.UTC().Format(time.RFC3339))
}

func formatDocker(docker api.Docker, at time.Time) string {
	if docker.Disabled {
		return "discovery off (docker.enabled: false)"
	}
	lastSync := "never synced"
	if !docker.LastSync.IsZero() {
		lastSync = "last sync " + formatDuration(at.Sub(docker.LastSync)) + " ago"
	}
	if docker.Connected {
		return "connected, " + lastSync
	}
	if docker.Error != "" {
		return fmt.Sprintf("disconnected (%s), %s", docker.Error, lastSync)
	}
	return "disconnected, " + lastSync
}

// formatDuration rounds to the second and counts days, which time.Duration.String does not.
func formatDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	const day = 24 * time.Hour
	if d < day {
		return d.String()
	}
	return fmt.Sprintf("%dd%s", d/day, (d % day).String())
}

// shortID shortens a container ID the way the docker CLI shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return orDash(id)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
