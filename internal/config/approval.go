package config

import (
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // zones resolve alike on every machine, with or without zone files

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

// Approval returns the approval policy called name.
func (r *Repository) Approval(name string) (*Approval, bool) {
	for i := range r.Approvals {
		if r.Approvals[i].Name == name {
			return &r.Approvals[i], true
		}
	}
	return nil, false
}

// Policy returns the policy as the approvals package evaluates it, with its
// schedules parsed and time zones loaded. It fails only where Validate
// does.
func (a *Approval) Policy() (approvals.Policy, error) {
	p := approvals.Policy{
		Name:         a.Name,
		MinApprovals: a.MinApprovals,
		Users:        a.Reviewers.Users,
		Teams:        a.Reviewers.Teams,
		Codeowners:   a.Codeowners,
		DismissStale: approvals.StalePlan,
	}
	switch a.DismissStale {
	case "", StalePlan:
	case StaleCommit:
		p.DismissStale = approvals.StaleCommit
	default:
		return approvals.Policy{}, fmt.Errorf("approval policy %q: dismissStale is %q; use commit or plan", a.Name, a.DismissStale)
	}
	for i, w := range a.Windows {
		kind := approvals.Allow
		switch w.Kind {
		case WindowAllow:
		case WindowDeny:
			kind = approvals.Deny
		default:
			return approvals.Policy{}, fmt.Errorf("approval policy %q: windows[%d]: kind is %q; use allow or deny", a.Name, i, w.Kind)
		}
		schedule, err := approvals.ParseCron(w.Schedule)
		if err != nil {
			return approvals.Policy{}, fmt.Errorf("approval policy %q: windows[%d]: %w", a.Name, i, err)
		}
		loc, err := loadZone(w.TimeZone)
		if err != nil {
			return approvals.Policy{}, fmt.Errorf("approval policy %q: windows[%d]: %w", a.Name, i, err)
		}
		p.Windows = append(p.Windows, approvals.Window{Kind: kind, Schedule: schedule, Duration: w.Duration.Duration, Location: loc})
	}
	return p, nil
}

// loadZone loads an IANA time zone; "" is UTC. Local is refused: it is the
// zone of whichever machine runs the bot or the plugin, so one policy
// would open its windows at different times on each.
func loadZone(name string) (*time.Location, error) {
	switch name {
	case "":
		return time.UTC, nil
	case "Local":
		return nil, errors.New("time zone Local is the zone of whichever machine evaluates the policy; name the zone, such as Europe/Berlin or UTC")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name such as Europe/Berlin, America/New_York or UTC", name)
	}
	return loc, nil
}
