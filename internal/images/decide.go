package images

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
)

// Hold keeps a policy at the version Git holds after a person went back
// from a newer one (a merged update reverted, a marked tag lowered by
// hand): no update to Above or anything the policy ranks at or below it is
// proposed again, until a strictly newer tag appears or someone lifts the
// hold (/gitops unhold).
type Hold struct {
	// At is the tag Git went back to, From the one it went back from.
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	// Above is the tag Git went back from, or the newest tag the policy
	// chose then if that was higher: nothing up to it is proposed.
	Above string `json:"above"`
	// Commit is the default branch's commit where the bot saw it.
	Commit string    `json:"commit,omitempty"`
	Since  time.Time `json:"since"`
}

// String says what the hold does, for a table or a pull request.
func (h Hold) String() string {
	return fmt.Sprintf("held at %s after Git went back from %s; a tag newer than %s lifts it, or comment /gitops unhold", h.At, cmp.Or(h.From, h.Above), h.Above)
}

// Action is what an update does for a policy.
type Action string

// Actions.
const (
	// ActionUpdate: the files hold an older tag (or another digest) than
	// the policy's choice, and an update writes it.
	ActionUpdate Action = "update"
	// ActionCurrent: the files hold the choice.
	ActionCurrent Action = "current"
	// ActionAhead: the files hold a tag the policy ranks above its choice
	// (set by hand, or excluded); an update never goes back.
	ActionAhead Action = "ahead"
	// ActionHeld: a Hold stops the update.
	ActionHeld Action = "held"
	// ActionNoMarker: no file marks a value of the policy.
	ActionNoMarker Action = "no-marker"
	// ActionError: no choice (the scan failed, or no tag qualifies).
	ActionError Action = "error"
)

// Decision is what an update would do for one policy.
type Decision struct {
	Policy string
	Image  string
	// Current are the tags the files hold (setter.Current.Tags), Latest the
	// policy's choice (empty on an error).
	Current []string
	Latest  string
	Action  Action
	// Update is what to write: set when Action is ActionUpdate.
	Update *setter.Update
	// Why explains Action for people.
	Why string
	// Held is why a newer tag waits (minimumAge), from the choice.
	Held string
	Err  error
}

// Decide works out what an update does for policy p, given its scan and
// what the files hold now (nil: no marker). hold, when not nil, is the
// policy's hold. It never proposes going back: a tag the policy ranks at
// or below one the files hold is not an update, except a pinned digest
// that moved with its tag.
func Decide(p *Policy, res Result, cur *setter.Current, hold *Hold) Decision {
	d := Decision{Policy: p.name, Image: p.image}
	if cur != nil {
		d.Current = cur.Tags
	}
	if res.Err != nil {
		d.Action, d.Err = ActionError, res.Err
		d.Why = res.Err.Error()
		if errors.Is(res.Err, ErrTooYoung) {
			d.Held = res.Err.Error()
		}
		return d
	}
	choice := res.Choice.Tag
	d.Latest, d.Held = choice.Name, res.Choice.Held
	if cur == nil || len(cur.Tags)+len(cur.Digests) == 0 {
		d.Action = ActionNoMarker
		d.Why = fmt.Sprintf("no file marks %s; add a marker such as # {\"$imagepolicy\": %q}", p.image, p.name)
		return d
	}
	// below are the files' tags the choice ranks above; ahead those it
	// ranks below.
	var below, ahead []string
	for _, t := range cur.Tags {
		switch c := p.Compare(choice.Name, t); {
		case c > 0:
			below = append(below, t)
		case c < 0:
			ahead = append(ahead, t)
		}
	}
	digestMoved := choice.Digest != "" && slices.ContainsFunc(cur.Digests, func(dg string) bool { return dg != choice.Digest })
	switch {
	case len(ahead) > 0:
		d.Action = ActionAhead
		d.Why = fmt.Sprintf("the files hold %s, above the policy's choice %s (%s); never going back", strings.Join(ahead, ", "), choice.Name, res.Choice.Why)
		return d
	case len(below) == 0 && !digestMoved:
		d.Action = ActionCurrent
		d.Why = "up to date: " + res.Choice.Why
		return d
	}
	if hold != nil && hold.Above != "" && p.Compare(choice.Name, hold.Above) <= 0 {
		d.Action = ActionHeld
		d.Why = hold.String()
		return d
	}
	d.Action = ActionUpdate
	d.Update = &setter.Update{Policy: p.name, Image: p.image, Tag: choice.Name, Digest: choice.Digest}
	switch {
	case len(below) > 0:
		d.Why = fmt.Sprintf("%s → %s: %s", strings.Join(below, ", "), choice.Name, res.Choice.Why)
	default:
		d.Why = fmt.Sprintf("%s moved to %s", choice.Name, shortDigest(choice.Digest))
	}
	return d
}

// Lowest is the tag of cur the policy ranks lowest, "" when there is none:
// what Git holds, when the files disagree.
func Lowest(p *Policy, cur *setter.Current) string {
	if cur == nil || len(cur.Tags) == 0 {
		return ""
	}
	return slices.MinFunc(cur.Tags, p.Compare)
}

// WentBack reports whether Git now holds a tag the policy ranks below
// before (what it held at the last look), and so whether to hold the
// policy: a merged update reverted, a marked tag lowered by hand. latest
// is the policy's choice now, "" if unknown; the hold's Above is the
// higher of before and latest.
func WentBack(p *Policy, before, now, latest, commit string, at time.Time) (Hold, bool) {
	if before == "" || now == "" || p.Compare(now, before) >= 0 {
		return Hold{}, false
	}
	above := before
	if latest != "" && p.Compare(latest, above) > 0 {
		above = latest
	}
	return Hold{At: now, From: before, Above: above, Commit: commit, Since: at}, true
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
