package docker

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-lb/berth/discovery"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// containerInfo is the part of a container inspection that discovery needs.
type containerInfo struct {
	ID      string
	Name    string
	Created time.Time
	// StartedAt tells one run of a container from the next, so a restart whose
	// die event was missed still clears the draining mark of the previous run.
	StartedAt string
	// Running is false for containers that are restarting, exited, dead or gone.
	Running    bool
	Health     string
	StopSignal string
	Labels     map[string]string
	Ports      nat.PortMap
}

// infoFromInspect keeps what discovery needs; every pointer of the response may be nil.
func infoFromInspect(c container.InspectResponse) containerInfo {
	var info containerInfo
	if c.ContainerJSONBase != nil {
		info.ID = c.ID
		info.Name = strings.TrimPrefix(c.Name, "/")
		info.Created, _ = time.Parse(time.RFC3339Nano, c.Created)
		if s := c.State; s != nil {
			info.StartedAt = s.StartedAt
			info.Running = s.Running && !s.Restarting && !s.Dead
			if s.Health != nil {
				info.Health = dockerHealth(s.Health.Status)
			}
		}
	}
	if c.Config != nil {
		info.Labels = c.Config.Labels
		info.StopSignal = c.Config.StopSignal
	}
	if c.NetworkSettings != nil {
		info.Ports = c.NetworkSettings.Ports
	}
	return info
}

// dockerHealth maps Docker's health status to Target.DockerHealth: "none" means
// the healthcheck is disabled, which serves like no healthcheck at all.
func dockerHealth(status string) string {
	if status == container.NoHealthcheck {
		return ""
	}
	return status
}

// targetConfig is what turns a container into targets besides the container itself.
type targetConfig struct {
	Node        string
	Advertise   string
	LabelPrefix string
}

// binding is the published address chosen for one container port.
type binding struct {
	ContainerPort int
	Address       string
	LocalOnly     bool
}

// buildEntry turns a running container into its target, with the labels it
// is registered without, or into a skip reason. ok is false when the
// container does not carry the group label and is no concern of berth.
func buildEntry(cfg targetConfig, info containerInfo) (entry containerEntry, ok bool) {
	entry.info = info
	spec, labelErrs := parseSpec(cfg.LabelPrefix, info.Labels)
	if labelErrs != nil {
		entry.skipReason = labelErrs.reason()
		return entry, true
	}
	if spec.Groups == nil {
		return entry, false
	}
	chosen, reason := selectBinding(info.Ports, spec.Port, spec.Proto, cfg.Advertise, cfg.LabelPrefix)
	if reason != "" {
		entry.skipReason = reason
		return entry, true
	}
	if len(spec.LeftOut) > 0 {
		entry.leftOut = spec.LeftOut.leftOutReason(cmp.Or(cfg.LabelPrefix, DefaultLabelPrefix))
	}
	groups := append([]string(nil), spec.Groups...)
	sort.Strings(groups)
	entry.target = discovery.Target{
		ID:            targetID(cfg.Node, info.ID, chosen.ContainerPort, spec.Proto),
		Node:          cfg.Node,
		Groups:        groups,
		Address:       chosen.Address,
		LocalOnly:     chosen.LocalOnly,
		Weight:        spec.Weight,
		ContainerID:   info.ID,
		ContainerName: info.Name,
		Created:       info.Created,
		DockerHealth:  info.Health,
		Settings:      spec.Settings,
		Rules:         ruleList(spec.Rule),
	}
	return entry, true
}

// targetID is "<node>/<container-id-12>/<port>", and "/udp" after it for a
// UDP port, so a container's TCP and UDP port of one number stay two targets.
func targetID(node, containerID string, port int, proto string) string {
	id := node + "/" + shortID(containerID) + "/" + strconv.Itoa(port)
	if proto == "udp" {
		id += "/udp"
	}
	return id
}

func ruleList(rule *discovery.Rule) []discovery.Rule {
	if rule == nil {
		return nil
	}
	return []discovery.Rule{*rule}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// selectBinding picks the published port of proto ("tcp", or "udp" when the
// label asks for it) to route to (wantPort, or the only one published) and
// its host address. reason is non-empty when there is none to pick.
func selectBinding(ports nat.PortMap, wantPort int, proto, advertise, prefix string) (binding, string) {
	if prefix == "" {
		prefix = DefaultLabelPrefix
	}
	if proto == "" {
		proto = "tcp"
	}
	published := publishedPorts(ports, proto)
	var containerPort int
	switch {
	case wantPort != 0:
		if _, ok := published[wantPort]; !ok {
			return binding{}, fmt.Sprintf("%s.port=%d but container port %d/%s is not published (published: %s): publish it with a dynamic host port (docker run -p %d, compose ports: [\"%d\"]) or set %s.port to a published port",
				prefix, wantPort, wantPort, proto, portList(published, proto), wantPort, wantPort, prefix)
		}
		containerPort = wantPort
	case len(published) == 0:
		return binding{}, "no published TCP port: publish the container port with a dynamic host port (docker run -p 8080, compose ports: [\"8080\"])"
	case len(published) > 1:
		return binding{}, fmt.Sprintf("several published ports (%s) and no %s.port label: set %s.port to the container port to route to",
			portList(published, proto), prefix, prefix)
	default:
		for port := range published {
			containerPort = port
		}
	}
	host := preferredBinding(published[containerPort])
	hostPort, err := strconv.Atoi(host.HostPort)
	if err != nil || hostPort < 1 || hostPort > 65535 {
		return binding{}, fmt.Sprintf("container port %d/%s is published on host port %q, which is not a port number", containerPort, proto, host.HostPort)
	}
	ip := host.HostIP
	// Local-only is what the publisher chose: a port published on a loopback
	// address. A port published on every interface is reachable at the
	// advertise address, whatever it is.
	hostIP, err := netip.ParseAddr(ip)
	localOnly := err == nil && hostIP.IsLoopback()
	if isWildcard(ip) {
		if advertise == "" {
			return binding{}, fmt.Sprintf("container port %d/%s is published on all interfaces and no advertise address is set: set node.advertise, or publish the port on a specific address", containerPort, proto)
		}
		ip = advertise
	}
	return binding{
		ContainerPort: containerPort,
		Address:       net.JoinHostPort(ip, strconv.Itoa(hostPort)),
		LocalOnly:     localOnly,
	}, ""
}

// publishedPorts maps each container port of proto with at least one host binding to its bindings.
func publishedPorts(ports nat.PortMap, proto string) map[int][]nat.PortBinding {
	published := map[int][]nat.PortBinding{}
	for port, bindings := range ports {
		if port.Proto() != proto {
			continue
		}
		number := port.Int()
		for _, b := range bindings {
			if b.HostPort != "" {
				published[number] = append(published[number], b)
			}
		}
	}
	return published
}

func portList(published map[int][]nat.PortBinding, proto string) string {
	if len(published) == 0 {
		return "none"
	}
	numbers := make([]int, 0, len(published))
	for port := range published {
		numbers = append(numbers, port)
	}
	sort.Ints(numbers)
	names := make([]string, len(numbers))
	for i, port := range numbers {
		names[i] = strconv.Itoa(port) + "/" + proto
	}
	return strings.Join(names, ", ")
}

// preferredBinding prefers IPv4 over IPv6 (Docker publishes "-p 8080" on both), then
// an address other nodes can reach over a loopback one, then Docker's order.
func preferredBinding(bindings []nat.PortBinding) nat.PortBinding {
	rank := func(b nat.PortBinding) int {
		r := 0
		if !isIPv4(b.HostIP) {
			r += 2
		}
		if addr, err := netip.ParseAddr(b.HostIP); err == nil && addr.IsLoopback() {
			r++
		}
		return r
	}
	best := bindings[0]
	for _, b := range bindings[1:] {
		if rank(b) < rank(best) {
			best = b
		}
	}
	return best
}

// isIPv4 counts "" as IPv4: Docker reports an IPv4 wildcard with an empty HostIP.
func isIPv4(ip string) bool {
	if ip == "" {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	return err == nil && addr.Unmap().Is4()
}

func isWildcard(ip string) bool {
	if ip == "" {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	return err == nil && addr.IsUnspecified()
}
