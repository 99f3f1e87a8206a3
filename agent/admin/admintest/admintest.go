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
	DrainList  []api.Drain
	// Drained records the references Drain and Undrain were called with.
	Drained, Undrained *[]string
	// DrainErr is what Drain and Undrain return.
	DrainErr error
}

// Status implements admin.Source.
func (s Source) Status() api.Status { return s.StatusDoc }

// Groups implements admin.Source.
func (s Source) Groups() []api.Group { return s.GroupList }

// Targets implements admin.Source.
func (s Source) Targets() []api.Target { return s.TargetList }

// Nodes implements admin.Source.
func (s Source) Nodes() []api.Node { return s.NodeList }

// Drains implements admin.Source.
func (s Source) Drains() []api.Drain { return s.DrainList }

// Drain implements admin.Source.
func (s Source) Drain(ref string) ([]api.Drain, error) {
	if s.Drained != nil {
		*s.Drained = append(*s.Drained, ref)
	}
	return s.DrainList, s.DrainErr
}

// Undrain implements admin.Source.
func (s Source) Undrain(ref string) error {
	if s.Undrained != nil {
		*s.Undrained = append(*s.Undrained, ref)
	}
	return s.DrainErr
}
