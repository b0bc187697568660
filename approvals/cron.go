package approvals

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed five-field cron schedule: minute, hour, day of month,
// month and day of week, as crontab(5) writes them. Each field is *, a
// number, a range (1-5), a list (1,3,5) or a step (*/15, 8-18/2, 5/10 for
// 5 to the end); months and weekdays may be named (JAN, MON, case does not
// matter); Sunday is 0 or 7. When both the day of month and the day of week
// are restricted (neither starts with *), a day matches if either does, as
// in Vixie cron: "0 9 1 * MON" is 09:00 on the first and on every Monday.
// The macros @yearly (@annually), @monthly, @weekly, @daily (@midnight)
// and @hourly are accepted too.
//
// A schedule has no time zone: Next and Prev read the fields in the
// location of the time they are given.
type Cron struct {
	expr                 string
	minute, hour, dom    uint64 // bit i set: value i matches
	month, dow           uint64
	domStar, dowStar     bool // the field starts with *: it does not restrict the day
	everyDay, everyMonth bool
}

// cronSearch bounds how far Next and Prev look for an occurrence: far
// enough for the 29th of February (eight years apart across 2100).
const cronSearch = 9 * 366 * 24 * time.Hour

var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day of week", min: 0, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

// ParseCron parses a five-field cron schedule such as "0 9 * * MON-FRI".
// Its errors name the field at fault and say what is allowed there.
func ParseCron(expr string) (*Cron, error) {
	spec := strings.TrimSpace(expr)
	if m, ok := cronMacros[strings.ToLower(spec)]; ok {
		spec = m
	} else if strings.HasPrefix(spec, "@") {
		return nil, fmt.Errorf("cron schedule %q: unknown macro; use five fields such as \"0 9 * * 1-5\", or @hourly, @daily, @weekly, @monthly or @yearly", expr)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		hint := ""
		if len(fields) == 6 {
			hint = "; seconds are not supported"
		}
		return nil, fmt.Errorf("cron schedule %q has %d fields, want 5: minute hour day-of-month month day-of-week, such as \"0 9 * * 1-5\"%s", expr, len(fields), hint)
	}
	c := &Cron{expr: strings.Join(fields, " ")}
	sets := [5]*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range fields {
		set, err := cronFields[i].parse(f)
		if err != nil {
			return nil, fmt.Errorf("cron schedule %q: %w", expr, err)
		}
		*sets[i] = set
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = strings.HasPrefix(fields[2], "*")
	c.dowStar = strings.HasPrefix(fields[4], "*")
	c.everyDay = c.dom == fullBits(1, 31) && c.dow == fullBits(0, 6)
	c.everyMonth = c.month == fullBits(1, 12)
	return c, nil
}

func fullBits(lo, hi int) uint64 { return (1<<(hi+1) - 1) &^ (1<<lo - 1) }

func (f cronField) parse(s string) (uint64, error) {
	var set uint64
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("%s %q has an empty list item; separate values with single commas, such as 1,15", f.name, s)
		}
		rng, stepText, hasStep := strings.Cut(item, "/")
		lo, hi := f.min, f.max
		if f.max == 7 {
			hi = 6 // * in the day of week is 0-6; 7 only as a value
		}
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("%s range %q runs backwards; ranges do not wrap around, so write it as two ranges joined by a comma, such as 22-23,0-5", f.name, rng)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo = v
			if !hasStep {
				hi = v
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return 0, fmt.Errorf("%s step %q is not a number from 1 to %d", f.name, stepText, f.max)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		want := fmt.Sprintf("a number from %d to %d", f.min, f.max)
		if f.names != nil {
			want += fmt.Sprintf(" or a name (%s-%s)", f.names[0], f.names[len(f.names)-1])
		}
		return 0, fmt.Errorf("%s %q is not %s", f.name, s, want)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%s %d is out of range %d-%d", f.name, n, f.min, f.max)
	}
	return n, nil
}

// String returns the schedule's five fields.
func (c *Cron) String() string { return c.expr }

// Next returns the first occurrence of the schedule after t, in t's
// location, or the zero time when there is none within nine years (as for
// "0 0 30 2 *"). See Prev for how daylight-saving changes are handled.
func (c *Cron) Next(t time.Time) time.Time {
	n, _ := c.next(t, t.Add(cronSearch))
	return n
}

// Prev returns the last occurrence of the schedule at or before t, in t's
// location, or the zero time when there is none within nine years.
//
// Occurrences are the instants whose wall clock, in t's location, matches
// the schedule. A wall time the clock skips when it springs forward (02:30
// on that night in Europe/Berlin) happens at the moment of the jump; one
// the clock passes twice when it falls back happens both times.
func (c *Cron) Prev(t time.Time) time.Time {
	p, _ := c.prev(t, t.Add(-cronSearch))
	return p
}

// transitionSlack is more than any change of a zone's offset: walls this
// far from t's may happen on the other side of t.
const transitionSlack = 3 * time.Hour

// nearTransition reports whether t's zone changes its offset within
// transitionSlack of t.
func nearTransition(t time.Time) bool {
	start, end := t.ZoneBounds()
	return (!start.IsZero() && t.Sub(start) < transitionSlack) || (!end.IsZero() && end.Sub(t) < transitionSlack)
}

// next returns the first occurrence after t, if there is one at or before
// limit.
func (c *Cron) next(t, limit time.Time) (time.Time, bool) {
	loc := t.Location()
	w := wallOf(t)
	if nearTransition(t) {
		w = w.Add(-transitionSlack) // a wall passed twice may come round again after t
	}
	wlimit := wallOf(limit.In(loc)).Add(transitionSlack)
	var best time.Time
	found := false
	for {
		var ok bool
		if w, ok = c.nextWall(w, wlimit); !ok {
			break
		}
		first, last := instants(w, loc)
		for _, at := range [2]time.Time{first, last} {
			if at.After(t) && (!found || at.Before(best)) {
				best, found = at, true
			}
		}
		// Both instants are non-decreasing in the wall time: no later
		// wall time happens before this one first does.
		if found && !first.Before(best) {
			break
		}
		w = w.Add(time.Minute)
	}
	if !found || best.After(limit) {
		return time.Time{}, false
	}
	return best, true
}

// prev returns the last occurrence at or before t, if there is one at or
// after limit.
func (c *Cron) prev(t, limit time.Time) (time.Time, bool) {
	loc := t.Location()
	w := wallOf(t)
	if nearTransition(t) {
		w = w.Add(transitionSlack) // a later wall may have happened already, before the clock fell back
	}
	wlimit := wallOf(limit.In(loc)).Add(-transitionSlack)
	var best time.Time
	found := false
	for {
		var ok bool
		if w, ok = c.prevWall(w, wlimit); !ok {
			break
		}
		first, last := instants(w, loc)
		for _, at := range [2]time.Time{first, last} {
			if !at.After(t) && (!found || at.After(best)) {
				best, found = at, true
			}
		}
		if found && !last.After(best) {
			break
		}
		w = w.Add(-time.Minute)
	}
	if !found || best.Before(limit) {
		return time.Time{}, false
	}
	return best, true
}

// wallOf returns t's wall clock, to the minute, as a UTC time: arithmetic
// on it is free of daylight-saving changes.
func wallOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
}

// instants returns when the wall clock w (a UTC time standing for a wall
// time) happens in loc: once (first == last); twice when the clock falls
// back over it; or, when the clock skips it, once at the jump. Both are
// non-decreasing in w.
func instants(w time.Time, loc *time.Location) (first, last time.Time) {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, loc)
	if got := wallOf(t); !got.Equal(w) {
		// w falls in a gap: the clock jumped over it.
		start, end := t.ZoneBounds()
		if got.After(w) {
			return start, start
		}
		return end, end
	}
	first, last = t, t
	_, offset := t.Zone()
	start, end := t.ZoneBounds()
	if !start.IsZero() {
		// Did the clock fall back at start, so that w happened before it too?
		if _, before := start.Add(-time.Second).Zone(); before > offset {
			if e := t.Add(-time.Duration(before-offset) * time.Second); e.Before(start) && wallOf(e).Equal(w) {
				first = e
			}
		}
	}
	if !end.IsZero() {
		// Will the clock fall back at end, so that w happens again after it?
		if _, after := end.Zone(); after < offset {
			if l := t.Add(time.Duration(offset-after) * time.Second); !l.Before(end) && wallOf(l).Equal(w) {
				last = l
			}
		}
	}
	return first, last
}

// matches reports whether the wall time w (a UTC time) is an occurrence.
func (c *Cron) matches(w time.Time) bool {
	return c.month&(1<<w.Month()) != 0 && c.dayMatches(w) && c.hour&(1<<w.Hour()) != 0 && c.minute&(1<<w.Minute()) != 0
}

func (c *Cron) dayMatches(w time.Time) bool {
	dom := c.dom&(1<<w.Day()) != 0
	dow := c.dow&(1<<int(w.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// nextWall returns the first matching wall time at or after w, if there
// is one before limit.
func (c *Cron) nextWall(w, limit time.Time) (time.Time, bool) {
	for w.Before(limit) {
		y, m, d := w.Date()
		switch {
		case !c.everyMonth && c.month&(1<<m) == 0:
			w = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.everyDay && !c.dayMatches(w):
			w = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		default:
			h, ok := nextBit(c.hour, w.Hour())
			if !ok {
				w = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
				continue
			}
			minute := 0
			if h == w.Hour() {
				minute = w.Minute()
			}
			mi, ok := nextBit(c.minute, minute)
			if !ok {
				w = time.Date(y, m, d, h+1, 0, 0, 0, time.UTC)
				continue
			}
			w = time.Date(y, m, d, h, mi, 0, 0, time.UTC)
			return w, w.Before(limit)
		}
	}
	return time.Time{}, false
}

// prevWall returns the last matching wall time at or before w, if there
// is one after limit.
func (c *Cron) prevWall(w, limit time.Time) (time.Time, bool) {
	for w.After(limit) {
		y, m, d := w.Date()
		switch {
		case !c.everyMonth && c.month&(1<<m) == 0:
			w = time.Date(y, m, 1, 0, -1, 0, 0, time.UTC)
		case !c.everyDay && !c.dayMatches(w):
			w = time.Date(y, m, d, 0, -1, 0, 0, time.UTC)
		default:
			h, ok := prevBit(c.hour, w.Hour())
			if !ok {
				w = time.Date(y, m, d, 0, -1, 0, 0, time.UTC)
				continue
			}
			minute := 59
			if h == w.Hour() {
				minute = w.Minute()
			}
			mi, ok := prevBit(c.minute, minute)
			if !ok {
				w = time.Date(y, m, d, h, -1, 0, 0, time.UTC)
				continue
			}
			w = time.Date(y, m, d, h, mi, 0, 0, time.UTC)
			return w, w.After(limit)
		}
	}
	return time.Time{}, false
}

// nextBit returns the lowest set bit of set at or above i.
func nextBit(set uint64, i int) (int, bool) {
	rest := set >> i << i
	if rest == 0 {
		return 0, false
	}
	return bits.TrailingZeros64(rest), true
}

// prevBit returns the highest set bit of set at or below i.
func prevBit(set uint64, i int) (int, bool) {
	rest := set & (1<<(i+1) - 1)
	if rest == 0 {
		return 0, false
	}
	return 63 - bits.LeadingZeros64(rest), true
}
