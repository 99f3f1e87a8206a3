package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// clearEnv makes a test independent of BERTH_* variables of the machine; viper and
// Load treat an empty variable as unset.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, s := range overridable {
		t.Setenv(EnvName(s.path), "")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGolden loads testdata/*.txtar. Each archive holds "berth.yaml" and "want":
// the effective configuration (one "path: value" line per setting) or the problems.
// Optional "env" (NAME=VALUE lines) and "flags" (arguments) sections are applied too.
// Run with -update to rewrite "want".
func TestGolden(t *testing.T) {
	archives, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(archives) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range archives {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			clearEnv(t)
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sections := map[string]string{}
			for _, f := range ar.Files {
				sections[f.Name] = string(f.Data)
			}
			if _, ok := sections["berth.yaml"]; !ok {
				t.Fatal("archive has no berth.yaml")
			}
			for line := range strings.Lines(sections["env"]) {
				name, value, _ := strings.Cut(strings.TrimSpace(line), "=")
				t.Setenv(name, value)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			BindFlags(fs)
			if err := fs.Parse(strings.Fields(sections["flags"])); err != nil {
				t.Fatal(err)
			}

			got := outcome(t, writeFile(t, sections["berth.yaml"]), fs)

			if *update {
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = []byte(got)
					}
				}
				if _, ok := sections["want"]; !ok {
					ar.Files = append(ar.Files, txtar.File{Name: "want", Data: []byte(got)})
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := sections["want"]; got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// outcome is the effective configuration or the list of problems, as text.
func outcome(t *testing.T, path string, fs *pflag.FlagSet) string {
	t.Helper()
	cfg, err := Load(path, fs)
	if err != nil {
		problems, ok := AsErrors(err)
		if !ok {
			t.Fatalf("Load: %v is not *Errors", err)
		}
		return "invalid:\n" + problems.Error() + "\n"
	}
	return render(cfg)
}

// render prints every setting as "path: value", sorted by path, with the machine's
// own hostname and address replaced so golden files hold on any host.
func render(c *Config) string {
	var lines []string
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch {
		case v.Type() == durationType:
			lines = append(lines, fmt.Sprintf("%s: %s", path, time.Duration(v.Int())))
			return
		}
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				lines = append(lines, path+": none")
				return
			}
			walk(path, v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				tag := v.Type().Field(i).Tag.Get("mapstructure")
				if tag == ",squash" {
					walk(path, v.Field(i))
					continue
				}
				walk(join(path, tag), v.Field(i))
			}
		case reflect.Slice:
			if v.Len() == 0 {
				lines = append(lines, path+": []")
			}
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		case reflect.Map:
			if v.Len() == 0 {
				lines = append(lines, path+": {}")
			}
			for _, k := range v.MapKeys() {
				walk(join(path, k.String()), v.MapIndex(k))
			}
		default:
			lines = append(lines, fmt.Sprintf("%s: %q", path, fmt.Sprint(v.Interface())))
		}
	}
	walk("", reflect.ValueOf(*c))
	slices.Sort(lines)
	host := defaults()
	out := strings.Join(lines, "\n") + "\n"
	out = strings.Replace(out, fmt.Sprintf("node.name: %q", host["node.name"]), "node.name: <hostname>", 1)
	out = strings.Replace(out, fmt.Sprintf("node.advertise: %q", host["node.advertise"]), "node.advertise: <default route address>", 1)
	return out
}

// TestPrecedence checks viper's order: flags > env > file > defaults.
func TestPrecedence(t *testing.T) {
	const file = "node: {name: from-file, advertise: 10.0.0.1}\nadmin: {listen: 127.0.0.1:7000}\ndocker: {label-prefix: file}\n"
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		get   func(*Config) any
		want  any
	}{
		{"file beats default", nil, nil, func(c *Config) any { return c.Admin.Listen }, "127.0.0.1:7000"},
		{"default when unset", nil, nil, func(c *Config) any { return c.Docker.Host }, "unix:///var/run/docker.sock"},
		{"env beats file", map[string]string{"BERTH_ADMIN_LISTEN": "127.0.0.1:7001"}, nil, func(c *Config) any { return c.Admin.Listen }, "127.0.0.1:7001"},
		{"env with dash in key", map[string]string{"BERTH_DOCKER_LABEL_PREFIX": "acme"}, nil, func(c *Config) any { return c.Docker.LabelPrefix }, "acme"},
		{"env advertise", map[string]string{"BERTH_NODE_ADVERTISE": "10.9.9.9"}, nil, func(c *Config) any { return c.Node.Advertise }, "10.9.9.9"},
		{"env duration in seconds", map[string]string{"BERTH_DOCKER_RESYNC": "90"}, nil, func(c *Config) any { return c.Docker.Resync }, 90 * time.Second},
		{"env duration", map[string]string{"BERTH_DOCKER_RESYNC": "2m"}, nil, func(c *Config) any { return c.Docker.Resync }, 2 * time.Minute},
		{"env bool", map[string]string{"BERTH_DOCKER_ENABLED": "false"}, nil, func(c *Config) any { return c.Docker.Enabled }, false},
		{"env list", map[string]string{"BERTH_CLUSTER_ENABLED": "true", "BERTH_CLUSTER_INSECURE": "true", "BERTH_CLUSTER_JOIN": "10.0.0.6, 10.0.0.7:7946"}, nil, func(c *Config) any { return c.Cluster.Join }, []string{"10.0.0.6", "10.0.0.7:7946"}},
		{"flag beats env", map[string]string{"BERTH_NODE_NAME": "from-env"}, []string{"--node.name=from-flag"}, func(c *Config) any { return c.Node.Name }, "from-flag"},
		{"env beats file when flag unset", map[string]string{"BERTH_NODE_NAME": "from-env"}, nil, func(c *Config) any { return c.Node.Name }, "from-env"},
		{"flag beats file", nil, []string{"--docker.label-prefix", "flagged"}, func(c *Config) any { return c.Docker.LabelPrefix }, "flagged"},
		{"flag docker host", nil, []string{"--docker.host=tcp://10.0.0.2:2375"}, func(c *Config) any { return c.Docker.Host }, "tcp://10.0.0.2:2375"},
		{"flag admin listen", map[string]string{"BERTH_ADMIN_LISTEN": "127.0.0.1:7001"}, []string{"--admin.listen=127.0.0.1:7002"}, func(c *Config) any { return c.Admin.Listen }, "127.0.0.1:7002"},
		{"flag advertise", nil, []string{"--node.advertise=10.1.1.1"}, func(c *Config) any { return c.Node.Advertise }, "10.1.1.1"},
	}
	path := writeFile(t, file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			BindFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, fs)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestOverrideErrors checks that a bad env or flag value names its source and
// carries no line of the file.
func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		want  string
	}{
		{"env duration", map[string]string{"BERTH_DOCKER_RESYNC": "soon"}, nil,
			`docker.resync: "soon" is not a duration: write it like 30s, 5m, 1d or a number of seconds (set by BERTH_DOCKER_RESYNC)`},
		{"env bool", map[string]string{"BERTH_DOCKER_ENABLED": "maybe"}, nil,
			`docker.enabled: "maybe" is not a boolean: write true or false (set by BERTH_DOCKER_ENABLED)`},
		{"env over a file value", map[string]string{"BERTH_ADMIN_LISTEN": "nowhere"}, nil,
			`admin.listen: "nowhere" is not host:port (write :80 or 0.0.0.0:80 to listen on every address)`},
		{"flag over a file value", nil, []string{"--node.advertise=0.0.0.0"},
			`node.advertise: 0.0.0.0 cannot be reached by other hosts: set this host's own IP`},
	}
	path := writeFile(t, "node: {advertise: 10.0.0.1}\nadmin: {listen: 127.0.0.1:7000}\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			BindFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, fs)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestLoadWithoutFile(t *testing.T) {
	clearEnv(t)
	t.Setenv("BERTH_NODE_NAME", "solo")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Node.Name != "solo" || cfg.Admin.Listen != "127.0.0.1:9900" || len(cfg.Listeners) != 0 {
		t.Errorf("got %+v", cfg)
	}
	if net.ParseIP(cfg.Node.Advertise) == nil || cfg.Node.Advertise != defaultAdvertise() {
		t.Errorf("advertise %q, want the default route's address %q", cfg.Node.Advertise, defaultAdvertise())
	}
}

func TestLoadMissingFile(t *testing.T) {
	clearEnv(t)
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("got %v, want a config: error wrapping os.ErrNotExist", err)
	}
	if _, isValidation := AsErrors(err); isValidation {
		t.Error("a missing file is not a validation problem")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Config{
		Node:   Node{Name: "a", Advertise: "10.0.0.1"},
		Docker: Docker{Host: "unix:///var/run/docker.sock", LabelPrefix: "berth", Resync: time.Second},
		Admin:  Admin{Listen: "127.0.0.1:0"},
		Cluster: Cluster{
			Bind: "0.0.0.0:7946",
		},
		Groups: map[string]Group{"web": DefaultGroup()},
	}
	if errs := c.Validate(); errs != nil {
		t.Fatalf("valid config: %v", errs)
	}
	c.Groups["web"] = Group{}
	want := []string{
		"groups.web.algorithm",
		"groups.web.connect-timeout",
		"groups.web.health.healthy",
		"groups.web.health.interval",
		"groups.web.health.matcher",
		"groups.web.health.path",
		"groups.web.health.protocol",
		"groups.web.health.timeout",
		"groups.web.health.timeout",
		"groups.web.health.unhealthy",
		"groups.web.protocol",
		"groups.web.response-timeout",
	}
	var got []string
	for _, e := range c.Validate() {
		got = append(got, e.Path)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("paths:\n%v\nwant:\n%v", got, want)
	}
}

func TestDefaultRouteInterface(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	tests := []struct {
		name  string
		table string
		want  string
	}{
		{"one default", header +
			"eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric wins", header +
			"wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth1"},
		{"no default route", header +
			"eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultRouteInterface(strings.NewReader(tt.table))
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDocsExample keeps the full example of docs/config.md valid.
func TestDocsExample(t *testing.T) {
	clearEnv(t)
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, found := strings.Cut(string(doc), "## Full example")
	_, example, _ = strings.Cut(example, "```yaml\n")
	example, _, closed := strings.Cut(example, "```")
	if !found || !closed {
		t.Fatal("docs/config.md has no full example in a yaml block")
	}
	if _, err := Load(writeFile(t, example), nil); err != nil {
		t.Errorf("the documented example is invalid:\n%v", err)
	}
}

// TestClusterBeyondLoopbackNeedsKey: gossip that other hosts reach without a
// key lets anyone join and route the listeners, so such a config is refused
// with the option to set and how to make a key.
func TestClusterBeyondLoopbackNeedsKey(t *testing.T) {
	tests := []struct {
		name, cluster string
		refused       bool
	}{
		{"every address, no key", `{enabled: true, bind: "0.0.0.0:0"}`, true},
		{"the default bind, no key", `{enabled: true}`, true},
		{"a host address, no key", `{enabled: true, bind: "10.0.0.5:7946"}`, true},
		{"with a key", `{enabled: true, bind: "0.0.0.0:0", secret-key-file: /etc/berth/gossip.key}`, false},
		{"insecure on purpose", `{enabled: true, bind: "0.0.0.0:0", insecure: true}`, false},
		{"loopback, no key", `{enabled: true, bind: "127.0.0.1:0"}`, false},
		{"off", `{enabled: false}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			_, err := Load(writeFile(t, "node: {name: a, advertise: 10.0.0.5}\ncluster: "+tt.cluster+"\n"), nil)
			if !tt.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("an open cluster without a key was accepted")
			}
			for _, want := range []string{"cluster.secret-key-file", "berth keygen", "cluster.insecure"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
		})
	}
}
