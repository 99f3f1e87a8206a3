// Package docker turns the containers of this host into discovery targets. It lists
// the running containers that carry the group label, follows the Docker events
// stream to apply starts, kills, deaths and health changes as they happen, and emits
// this host's full state after each change.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/berth-lb/berth/discovery"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Defaults for the zero values of Options.
const (
	DefaultResync   = 30 * time.Second
	DefaultDebounce = 10 * time.Millisecond
)

// Reconnection backoff bounds, and the time limit of one API call.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	apiTimeout = 10 * time.Second
)

// Options configure a Watcher.
type Options struct {
	// Host is the Docker daemon address, e.g. unix:///var/run/docker.sock; ""
	// uses DOCKER_HOST and the other DOCKER_* variables, or the default socket.
	Host string
	// LabelPrefix is the label namespace, default "berth" (berth.group, berth.port...).
	LabelPrefix string
	// Node is this node's name; it starts every target ID.
	Node string
	// Advertise is the address of this host used for ports published on all
	// interfaces (0.0.0.0, ::).
	Advertise string
	// Resync is the period of the full re-list that corrects any drift, default 30s.
	Resync time.Duration
	// Debounce coalesces a burst of events into one emitted state, default 10ms.
	// Keep it small: it delays the draining mark of a killed container.
	Debounce time.Duration
	// Logger receives the warnings and debug lines; nil uses slog.Default().
	Logger *slog.Logger
}

// Stats describe the watcher for metrics and status.
type Stats struct {
	// Connected is true while the events stream is followed.
	Connected bool
	// LastSync is when the last full list of the containers completed.
	LastSync time.Time
	// LastError is the most recent connection error; it stays after recovery so
	// status can tell what happened last.
	LastError string
	// Events counts the container events received, by action ("start", "kill",
	// "health_status"...).
	Events map[string]uint64
	// Resyncs counts the periodic full re-lists.
	Resyncs uint64
	// Reconnects counts the times the connection was established again after a loss.
	Reconnects uint64
}

// Watcher follows one Docker daemon. Create it with New, run it once with Run.
type Watcher struct {
	opts   Options
	client *client.Client
	log    *slog.Logger

	mu    sync.Mutex
	stats Stats
}

// New creates a Watcher; it does not contact Docker yet.
func New(opts Options) (*Watcher, error) {
	if opts.LabelPrefix == "" {
		opts.LabelPrefix = DefaultLabelPrefix
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Node == "" {
		return nil, errors.New("docker: node name is empty: set the node name, it starts every target ID")
	}
	clientOpts := []client.Opt{client.FromEnv}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	clientOpts = append(clientOpts, client.WithAPIVersionNegotiation())
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %q: %w (check docker.host or DOCKER_HOST)", opts.Host, err)
	}
	return &Watcher{
		opts:   opts,
		client: cli,
		log:    opts.Logger,
		stats:  Stats{Events: map[string]uint64{}},
	}, nil
}

// Stats returns a copy of the current statistics; it is safe for concurrent use.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	stats := w.stats
	stats.Events = maps.Clone(w.stats.Events)
	return stats
}

func (w *Watcher) updateStats(update func(*Stats)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	update(&w.stats)
}

// Run lists the running containers, emits this host's full state on out, then follows
// the events stream and emits the new full state after each change (debounced). A
// periodic full re-list corrects any drift. When the connection or the stream drops,
// it reconnects with exponential backoff and lists again, so no stale or duplicate
// target remains. It returns nil when ctx is cancelled, and closes the Docker client.
func (w *Watcher) Run(ctx context.Context, out chan<- discovery.State) error {
	defer w.client.Close()
	r := &run{
		w:     w,
		out:   out,
		state: newHostState(targetConfig{Node: w.opts.Node, Advertise: w.opts.Advertise, LabelPrefix: w.opts.LabelPrefix}, w.log),
	}
	backoff := minBackoff
	for {
		established, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			backoff = minBackoff
		}
		if established {
			r.lost = time.Now()
		}
		w.updateStats(func(s *Stats) {
			s.Connected = false
			s.LastError = err.Error()
		})
		// One warning per outage; the retries of a daemon that stays away go to debug.
		if established || backoff == minBackoff {
			w.log.Warn("docker: connection lost, reconnecting", "error", err, "retry_in", backoff)
		} else {
			w.log.Debug("docker: still not connected", "error", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// run is the state of one Run call, owned by its goroutine.
type run struct {
	w     *Watcher
	out   chan<- discovery.State
	state *hostState
	// emitted is the last state sent, nil before the first one.
	emitted *discovery.State
	// since is the daemon time of the last event seen (before any, the local time
	// of the first subscription): on reconnection the daemon replays what happened
	// while the stream was cut, so a container killed meanwhile and still stopping
	// is marked draining.
	since time.Time
	// sessions counts the sessions that listed successfully.
	sessions int
	// lost is when the last established session ended.
	lost time.Time
}

// session connects, lists and follows the events until an error or ctx ends.
// established reports whether the list succeeded, which resets the backoff.
func (r *run) session(ctx context.Context) (established bool, err error) {
	w := r.w
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	eventFilters := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", w.opts.LabelPrefix+".group"),
	)
	listOpts := events.ListOptions{Filters: eventFilters}
	if !r.since.IsZero() {
		listOpts.Since = fmt.Sprintf("%d.%09d", r.since.Unix(), r.since.Nanosecond())
	}
	subscribed := time.Now()
	// Subscribe before listing, so nothing that happens during the list is missed.
	messages, streamErrs := w.client.Events(streamCtx, listOpts)
	if err := r.resync(ctx); err != nil {
		return false, err
	}
	if r.since.IsZero() {
		// No event seen yet: a later reconnection replays from this session's start.
		r.since = subscribed
	}
	r.sessions++
	if r.sessions > 1 {
		w.log.Info("docker: connected again; containers listed", "down", time.Since(r.lost).Round(time.Millisecond))
	}
	w.updateStats(func(s *Stats) {
		s.Connected = true
		if r.sessions > 1 {
			s.Reconnects++
		}
	})
	if err := r.emit(ctx); err != nil {
		return true, err
	}

	resync := time.NewTicker(w.opts.Resync)
	defer resync.Stop()
	debounce := time.NewTimer(0)
	<-debounce.C
	pending := false
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-streamErrs:
			if err == nil {
				err = errors.New("closed by the daemon")
			}
			return true, fmt.Errorf("docker: events stream: %w", err)
		case msg := <-messages:
			w.updateStats(func(s *Stats) { s.Events[eventKind(msg.Action)]++ })
			if msg.TimeNano != 0 {
				r.since = time.Unix(0, msg.TimeNano)
			}
			if err := applyEvent(ctx, r.state, msg, w.inspect); err != nil {
				return true, err
			}
			if !pending {
				pending = true
				debounce.Reset(w.opts.Debounce)
			}
		case <-debounce.C:
			pending = false
			if err := r.emit(ctx); err != nil {
				return true, err
			}
		case <-resync.C:
			if err := r.resync(ctx); err != nil {
				return true, err
			}
			w.updateStats(func(s *Stats) { s.Resyncs++ })
			if err := r.emit(ctx); err != nil {
				return true, err
			}
		}
	}
}

// resync lists and inspects every running container with the group label and makes
// the state exactly that.
func (r *run) resync(ctx context.Context) error {
	w := r.w
	listCtx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	summaries, err := w.client.ContainerList(listCtx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", w.opts.LabelPrefix+".group")),
	})
	if err != nil {
		return fmt.Errorf("docker: list containers: %w", err)
	}
	infos := make([]containerInfo, 0, len(summaries))
	for _, summary := range summaries {
		info, err := w.inspect(ctx, summary.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("docker: inspect container %s: %w", shortID(summary.ID), err)
		}
		infos = append(infos, info)
	}
	r.state.replaceAll(infos)
	w.updateStats(func(s *Stats) { s.LastSync = time.Now() })
	return nil
}

// emit sends the state when it differs from the last one sent.
func (r *run) emit(ctx context.Context) error {
	state := r.state.snapshot()
	if r.emitted != nil && reflect.DeepEqual(*r.emitted, state) {
		return nil
	}
	select {
	case r.out <- state:
		r.emitted = &state
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Watcher) inspect(ctx context.Context, id string) (containerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	c, err := w.client.ContainerInspect(ctx, id)
	if err != nil {
		return containerInfo{}, err
	}
	return infoFromInspect(c), nil
}
