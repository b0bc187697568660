package approvals

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below on machines without zone files
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustCron(t testing.TB, expr string) *Cron {
	t.Helper()
	c, err := ParseCron(expr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCronNext(t *testing.T) {
	// 2026-12-01 is a Tuesday.
	from := time.Date(2026, 12, 1, 10, 17, 30, 0, time.UTC)
	tests := []struct {
		expr string
		want string // time.DateTime of Next(from), "" for none
	}{
		{"* * * * *", "2026-12-01 10:18:00"},
		{"0 9 * * 1-5", "2026-12-02 09:00:00"},
		{"0 9 * * MON-fri", "2026-12-02 09:00:00"},
		{"*/15 * * * *", "2026-12-01 10:30:00"},
		{"5/20 * * * *", "2026-12-01 10:25:00"},
		{"0 8-18/4 * * *", "2026-12-01 12:00:00"},
		{"0,30 22-23 * * *", "2026-12-01 22:00:00"},
		{"0 0 1 JAN *", "2027-01-01 00:00:00"},
		{"0 0 * * 7", "2026-12-06 00:00:00"}, // 7 is Sunday
		{"0 0 * * SUN", "2026-12-06 00:00:00"},
		{"0 0 * * 5-7", "2026-12-04 00:00:00"},
		{"0 0 13 * FRI", "2026-12-04 00:00:00"},       // both restricted: the 13th or a Friday
		{"0 0 13 * *", "2026-12-13 00:00:00"},         // only the 13th
		{"0 0 */2 * FRI", "2026-12-11 00:00:00"},      // * in the day of month: an odd day and a Friday
		{"0 0 29 2 *", "2028-02-29 00:00:00"},         // leap day
		{"0 0 30 2 *", ""},                            // never
		{"@daily", "2026-12-02 00:00:00"},             // macro
		{"@HOURLY", "2026-12-01 11:00:00"},            // in any case
		{"  17   10 1 12 *  ", "2027-12-01 10:17:00"}, // 10:17:00 is before from, so next year
	}
	for _, tt := range tests {
		c, err := ParseCron(tt.expr)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tt.expr, err)
			continue
		}
		got := c.Next(from)
		if s := got.Format(time.DateTime); (tt.want == "" && !got.IsZero()) || (tt.want != "" && s != tt.want) {
			t.Errorf("ParseCron(%q).Next = %v, want %q", tt.expr, got, tt.want)
		}
		if p := c.Prev(got); tt.want != "" && !p.Equal(got) {
			t.Errorf("ParseCron(%q).Prev(Next) = %v, want %v", tt.expr, p, got)
		}
	}
}

func TestParseCronErrors(t *testing.T) {
	tests := map[string]string{
		"":                "has 0 fields, want 5",
		"0 9 * *":         "has 4 fields, want 5: minute hour day-of-month month day-of-week",
		"0 0 9 * * 1":     "seconds are not supported",
		"60 * * * *":      "minute 60 is out of range 0-59",
		"* 24 * * *":      "hour 24 is out of range 0-23",
		"* * 0 * *":       "day of month 0 is out of range 1-31",
		"* * * 13 *":      "month 13 is out of range 1-12",
		"* * * * 8":       "day of week 8 is out of range 0-7",
		"* * * FOO *":     `month "FOO" is not a number from 1 to 12 or a name (JAN-DEC)`,
		"* * * * MONDAY":  `day of week "MONDAY" is not`,
		"17-5 * * * *":    `minute range "17-5" runs backwards`,
		"*/0 * * * *":     `minute step "0" is not a number from 1 to 59`,
		"*/x * * * *":     `minute step "x"`,
		"1,,2 * * * *":    "empty list item",
		"-1 * * * *":      `minute "" is not`,
		"+1 * * * *":      `minute "+1" is not`,
		"@reboot":         "unknown macro",
		"* * * * 1-":      `day of week "" is not`,
		"*-5 * * * *":     `minute "*" is not`,
		"1/2/3 * * * *":   `minute step "2/3"`,
		"0 9 * * 1-5 CET": "has 6 fields",
	}
	for expr, want := range tests {
		_, err := ParseCron(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCron(%q) error = %v, want it to contain %q", expr, err, want)
		}
	}
}

func TestCronDaylightSaving(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation(time.DateTime, s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	c := mustCron(t, "30 2 * * *")
	// 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 happens at the jump.
	if got, want := c.Next(at("2026-03-29 00:00:00")), time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("spring forward: Next = %v, want %v (03:00 CEST)", got, want.In(berlin))
	}
	if got, want := c.Next(at("2026-03-29 03:10:00")), at("2026-03-30 02:30:00"); !got.Equal(want) {
		t.Errorf("after the jump: Next = %v, want %v", got, want)
	}
	// 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice.
	first := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC).In(berlin)  // 02:30 CEST
	second := time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC).In(berlin) // 02:30 CET
	if got := c.Next(at("2026-10-25 00:00:00")); !got.Equal(first) {
		t.Errorf("fall back: Next = %v, want %v", got, first)
	}
	if got := c.Next(first); !got.Equal(second) {
		t.Errorf("fall back, second pass: Next = %v, want %v", got, second)
	}
	if got, want := c.Next(second), at("2026-10-26 02:30:00"); !got.Equal(want) {
		t.Errorf("after the second pass: Next = %v, want %v", got, want)
	}
	// Between the passes, the last 02:30 was the first one.
	if got := c.Prev(time.Date(2026, 10, 25, 1, 15, 0, 0, time.UTC).In(berlin)); !got.Equal(first) {
		t.Errorf("fall back: Prev(02:15 CET) = %v, want %v", got, first)
	}
	// Every minute across the repeated hour: each instant, in order.
	every := mustCron(t, "* * * * *")
	prev := at("2026-10-25 01:58:00")
	for range 150 {
		n := every.Next(prev)
		if d := n.Sub(prev); d != time.Minute {
			t.Fatalf("Next(%v) = %v, %v later; want a minute", prev, n, d)
		}
		prev = n
	}
}

// TestCronAgainstBruteForce compares Next and Prev with the earliest (latest)
// occurrence found by trying every wall-clock minute around t.
func TestCronAgainstBruteForce(t *testing.T) {
	zones := []*time.Location{time.UTC, mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York"), mustLoad(t, "Australia/Lord_Howe")}
	exprs := []string{"30 2 * * *", "*/7 1-3 * * *", "* * * * *", "0 0 * * SUN,WED", "15 2,3 * 3,4,10,11 *", "0 9 1 * MON,THU", "45 1 * * *"}
	starts := []time.Time{
		time.Date(2026, 3, 8, 6, 0, 0, 0, time.UTC),   // New York springs forward at 07:00Z
		time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC),  // Berlin springs forward at 01:00Z
		time.Date(2026, 4, 4, 14, 0, 0, 0, time.UTC),  // Lord Howe falls back half an hour at 15:00Z
		time.Date(2026, 10, 3, 15, 0, 0, 0, time.UTC), // Lord Howe springs forward half an hour at 15:30Z
		time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), // Berlin falls back at 01:00Z
		time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),  // New York falls back at 06:00Z
	}
	for _, loc := range zones {
		for _, expr := range exprs {
			c := mustCron(t, expr)
			for _, start := range starts {
				all := occurrences(c, start.Add(-5*24*time.Hour), start.Add(5*24*time.Hour), loc)
				for step := range 24 * 4 {
					at := start.Add(time.Duration(step)*7*time.Minute + 13*time.Second).In(loc)
					var next, prev time.Time
					for _, o := range all {
						if o.After(at) && (next.IsZero() || o.Before(next)) {
							next = o
						}
						if !o.After(at) && o.After(prev) {
							prev = o
						}
					}
					if got := c.Next(at); !got.Equal(next) {
						t.Errorf("%s in %s: Next(%v) = %v, want %v", expr, loc, at, got, next)
					}
					if got := c.Prev(at); !got.Equal(prev) {
						t.Errorf("%s in %s: Prev(%v) = %v, want %v", expr, loc, at, got, prev)
					}
				}
			}
		}
	}
}

// occurrences lists the occurrences between from and to by definition: the
// instants of every minute whose wall clock matches, and the jumps over
// matching wall times the clock skips.
func occurrences(c *Cron, from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	for at := from.Truncate(time.Minute); at.Before(to); at = at.Add(time.Minute) {
		if c.matches(wallOf(at.In(loc))) {
			out = append(out, at)
		}
	}
	for w := wallOf(from.In(loc)); w.Before(wallOf(to.In(loc))); w = w.Add(time.Minute) {
		if first, _ := instants(w, loc); c.matches(w) && !wallOf(first.In(loc)).Equal(w) {
			out = append(out, first) // skipped: happens at the jump
		}
	}
	return out
}

func TestInstantsAreMonotonic(t *testing.T) {
	for _, name := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia"} {
		loc := mustLoad(t, name)
		var lastFirst, lastLast time.Time
		for w := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC); w.Before(time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)); w = w.Add(time.Minute) {
			first, last := instants(w, loc)
			if first.Before(lastFirst) || last.Before(lastLast) || last.Before(first) {
				t.Fatalf("%s: instants(%v) = %v, %v; the minute before: %v, %v", name, w, first, last, lastFirst, lastLast)
			}
			lastFirst, lastLast = first, last
		}
	}
}
