// Package admintest holds a fixed admin.Source for tests of the admin API and
// of the commands that read it.
package admintest

import "github.com/berth-lb/berth/agent/api"

// Source answers with its fields as they are.
type Source struct {
	StatusDoc  api.Status
	GroupList  []api.Group
	TargetList []api.Target
	NodeList   []api.Node
}

// Status implements admin.Source.
func (s Source) Status() api.Status { return s.StatusDoc }

// Groups implements admin.Source.
func (s Source) Groups() []api.Group { return s.GroupList }

// Targets implements admin.Source.
func (s Source) Targets() []api.Target { return s.TargetList }

// Nodes implements admin.Source.
func (s Source) Nodes() []api.Node { return s.NodeList }
