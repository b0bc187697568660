package approvals

import "time"

// WindowKind says whether a deploy window allows or denies syncs.
type WindowKind string

// Kinds of deploy windows.
const (
	// Allow windows are the only times a sync may run, when a policy has
	// any.
	Allow WindowKind = "allow"
	// Deny windows are times no sync may run, even inside an allow window.
	Deny WindowKind = "deny"
)

// Window is a recurring deploy window: it opens at every occurrence of
// Schedule, read in Location, and stays open for Duration. An occurrence
// covers the instants from its start (included) to its end (excluded);
// occurrences may overlap or touch, and then cover one longer span.
//
// A window with no Schedule or a Duration of zero never opens; a Kind
// other than Allow counts as Deny.
type Window struct {
	Kind     WindowKind
	Schedule *Cron
	Duration time.Duration
	// Location is the time zone Schedule is read in; nil means UTC. The
	// caller resolves names such as Europe/Berlin (time.LoadLocation reads
	// the system's zone files, which this package never does).
	Location *time.Location
}

// Horizon bounds how far ahead Evaluate looks for the next time the
// deploy windows open.
const Horizon = 366 * 24 * time.Hour

// Active reports whether an occurrence of w covers t.
func (w Window) Active(t time.Time) bool {
	_, ok := w.activeUntil(t, t)
	return ok
}

func (w Window) usable() bool { return w.Schedule != nil && w.Duration > 0 }

func (w Window) location() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// activeUntil reports whether an occurrence of w covers t and, if so, when
// the span of occurrences covering t ends; the span is followed only until
// it passes until.
func (w Window) activeUntil(t, until time.Time) (time.Time, bool) {
	if !w.usable() {
		return time.Time{}, false
	}
	t = t.In(w.location())
	s, ok := w.Schedule.prev(t, t.Add(-w.Duration))
	if !ok {
		return time.Time{}, false
	}
	end := s.Add(w.Duration)
	if !end.After(t) {
		return time.Time{}, false
	}
	for !end.After(until) {
		n, ok := w.Schedule.next(s, end)
		if !ok {
			break
		}
		s = n
		if e := n.Add(w.Duration); e.After(end) {
			end = e
		}
	}
	return end, true
}

// nextStart returns the first occurrence of w after t, if there is one at
// or before until.
func (w Window) nextStart(t, until time.Time) (time.Time, bool) {
	if !w.usable() {
		return time.Time{}, false
	}
	return w.Schedule.next(t.In(w.location()), until)
}

// nextOpen returns the first instant at or after from when the windows let
// a sync run (no deny window active and, if there are allow windows, one of
// them active), if there is one at or before until.
//
// The state can only change from closed to open where an allow window
// starts or a deny window ends, so the search jumps from one such instant
// to the next instead of stepping through time.
func nextOpen(windows []Window, from, until time.Time) (time.Time, bool) {
	allows := false
	for _, w := range windows {
		allows = allows || w.Kind == Allow
	}
	c := from
	for !c.After(until) {
		jump := c
		for _, w := range windows {
			if w.Kind == Allow {
				continue
			}
			if end, ok := w.activeUntil(c, until); ok && end.After(jump) {
				jump = end
			}
		}
		if jump.After(c) {
			c = jump
			continue
		}
		if !allows {
			return c, true
		}
		var next time.Time
		for _, w := range windows {
			if w.Kind != Allow {
				continue
			}
			if w.Active(c) {
				return c, true
			}
			if n, ok := w.nextStart(c, until); ok && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		if next.IsZero() {
			return time.Time{}, false
		}
		c = next
	}
	return time.Time{}, false
}

// nextOpenAll returns the first instant at or after from when every set of
// windows lets a sync run, if there is one at or before until.
func nextOpenAll(sets [][]Window, from, until time.Time) (time.Time, bool) {
	c := from
	for {
		moved := false
		for _, ws := range sets {
			n, ok := nextOpen(ws, c, until)
			if !ok {
				return time.Time{}, false
			}
			if n.After(c) {
				c, moved = n, true
			}
		}
		if !moved {
			return c, true
		}
	}
}
