package approvals

import (
	"slices"
	"testing"
	"time"
)

func window(t testing.TB, kind WindowKind, expr string, d time.Duration, loc *time.Location) Window {
	return Window{Kind: kind, Schedule: mustCron(t, expr), Duration: d, Location: loc}
}

func TestEvaluateWindows(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	in := func(loc *time.Location, s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	office := window(t, Allow, "0 9 * * 1-5", 8*time.Hour, berlin)
	weekend := window(t, Deny, "0 18 * * FRI", 63*time.Hour, berlin)
	lunch := window(t, Deny, "0 12 * * *", time.Hour, berlin)
	tests := []struct {
		name    string
		windows []Window
		now     time.Time
		want    string // the window reason; "" when open
	}{{
		name: "no windows",
		now:  in(berlin, "2026-12-05 03:00"),
	}, {
		name:    "inside an allow window",
		windows: []Window{office},
		now:     in(berlin, "2026-12-01 10:00"),
	}, {
		name:    "at the start of an allow window",
		windows: []Window{office},
		now:     in(berlin, "2026-12-01 09:00"),
	}, {
		name:    "at the end of an allow window",
		windows: []Window{office},
		now:     in(berlin, "2026-12-01 17:00"),
		want:    "deploy window closed until 2026-12-02 09:00 CET",
	}, {
		name:    "after office hours on a Friday",
		windows: []Window{office},
		now:     in(berlin, "2026-12-04 17:30"),
		want:    "deploy window closed until 2026-12-07 09:00 CET",
	}, {
		name:    "a deny window alone",
		windows: []Window{weekend},
		now:     in(berlin, "2026-12-05 12:00"),
		want:    "deploy window closed until 2026-12-07 09:00 CET",
	}, {
		name:    "outside a deny window alone",
		windows: []Window{weekend},
		now:     in(berlin, "2026-12-03 23:00"),
	}, {
		name:    "deny wins over allow",
		windows: []Window{office, lunch},
		now:     in(berlin, "2026-12-01 12:30"),
		want:    "deploy window closed until 2026-12-01 13:00 CET",
	}, {
		name:    "deny over the end of an allow window",
		windows: []Window{window(t, Allow, "0 9 * * *", 4*time.Hour, berlin), window(t, Deny, "0 12 * * *", 2*time.Hour, berlin)},
		now:     in(berlin, "2026-12-01 12:30"),
		want:    "deploy window closed until 2026-12-02 09:00 CET",
	}, {
		name:    "overlapping allow windows",
		windows: []Window{window(t, Allow, "0 9 * * *", 4*time.Hour, berlin), window(t, Allow, "0 12 * * *", 4*time.Hour, berlin)},
		now:     in(berlin, "2026-12-01 15:59"),
	}, {
		name:    "overlapping deny occurrences add up",
		windows: []Window{window(t, Deny, "0 0-5 * * *", 90*time.Minute, berlin)},
		now:     in(berlin, "2026-12-01 01:15"),
		want:    "deploy window closed until 2026-12-01 06:30 CET",
	}, {
		name:    "deny windows that never end",
		windows: []Window{window(t, Deny, "0 * * * *", 90*time.Minute, berlin)},
		now:     in(berlin, "2026-12-01 01:15"),
		want:    "deploy window closed: no window opens within a year; check the policy's windows",
	}, {
		name:    "an allow window that never comes",
		windows: []Window{window(t, Allow, "0 9 30 2 *", time.Hour, berlin)},
		now:     in(berlin, "2026-12-01 01:15"),
		want:    "deploy window closed: no window opens within a year; check the policy's windows",
	}, {
		name:    "an allow window of no length",
		windows: []Window{{Kind: Allow, Schedule: mustCron(t, "* * * * *")}},
		now:     in(berlin, "2026-12-01 01:15"),
		want:    "deploy window closed: no window opens within a year; check the policy's windows",
	}, {
		name:    "a deny window of no length",
		windows: []Window{{Kind: Deny, Schedule: mustCron(t, "* * * * *")}, {Kind: Deny, Duration: time.Hour}},
		now:     in(berlin, "2026-12-01 01:15"),
	}, {
		name:    "an unknown kind denies",
		windows: []Window{window(t, "sometimes", "0 0 * * *", 2*time.Hour, nil)},
		now:     in(time.UTC, "2026-12-01 01:15"),
		want:    "deploy window closed until 2026-12-01 02:00 UTC",
	}, {
		name:    "in UTC without a location",
		windows: []Window{window(t, Allow, "0 9 * * *", time.Hour, nil)},
		now:     in(berlin, "2026-12-01 11:00"),
		want:    "deploy window closed until 2026-12-02 09:00 UTC",
	}, {
		name:    "the day the clocks spring forward",
		windows: []Window{window(t, Allow, "0 9 * * *", 8*time.Hour, berlin)},
		now:     in(berlin, "2026-03-29 08:30"),
		want:    "deploy window closed until 2026-03-29 09:00 CEST",
	}, {
		name:    "a deny window in the skipped hour starts at the jump",
		windows: []Window{window(t, Deny, "30 2 * * *", time.Hour, berlin)},
		now:     time.Date(2026, 3, 29, 1, 10, 0, 0, time.UTC), // 03:10 CEST
		want:    "deploy window closed until 2026-03-29 04:00 CEST",
	}, {
		name:    "a deny window in the repeated hour happens twice",
		windows: []Window{window(t, Deny, "30 2 * * *", 30*time.Minute, berlin)},
		now:     time.Date(2026, 10, 25, 1, 40, 0, 0, time.UTC), // 02:40 CET
		want:    "deploy window closed until 2026-10-25 03:00 CET",
	}, {
		name:    "a window in another zone than the first",
		windows: []Window{office, window(t, Deny, "0 0 * * *", 15*time.Hour, time.UTC)},
		now:     in(berlin, "2026-12-01 10:00"),
		want:    "deploy window closed until 2026-12-01 16:00 CET",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(Policy{Windows: tt.windows}, Facts{Now: tt.now})
			var got string
			if len(d.WindowReasons) > 0 {
				got = d.WindowReasons[0]
			}
			if got != tt.want || len(d.WindowReasons) > 1 {
				t.Errorf("window reasons = %q, want %q", d.WindowReasons, tt.want)
			}
			open := tt.want == ""
			never := !open && d.NextOpen.IsZero()
			if d.Open != open || d.Allowed != open || d.Pending != (!open && !never) || !d.Approved {
				t.Errorf("Open, Allowed, Pending, Approved = %v, %v, %v, %v", d.Open, d.Allowed, d.Pending, d.Approved)
			}
			if !open && !never && "deploy window closed until "+d.NextOpen.Format("2006-01-02 15:04 MST") != tt.want {
				t.Errorf("NextOpen = %v", d.NextOpen)
			}
			if d.ApprovalState() != StateSuccess {
				t.Errorf("ApprovalState = %v; the windows are not about reviews", d.ApprovalState())
			}
		})
	}
}

// TestNextOpenAgainstBruteForce checks nextOpen against the definition:
// the first minute at or after t when no deny window and (if any) an allow
// window covers it, each window covering (start-duration, start].
func TestNextOpenAgainstBruteForce(t *testing.T) {
	berlin, york := mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York")
	sets := [][]Window{
		{window(t, Allow, "0 9 * * 1-5", 8*time.Hour, berlin), window(t, Deny, "0 12 * * *", time.Hour, berlin), window(t, Deny, "*/20 * * * *", 5*time.Minute, time.UTC)},
		{window(t, Allow, "30 1 * * *", 3*time.Hour, york), window(t, Deny, "0 2 * * SUN", 90*time.Minute, york)},
		{window(t, Deny, "0 0-5 * * *", 61*time.Minute, berlin), window(t, Deny, "45 13 * * *", 10*time.Minute, york)},
		{window(t, Allow, "0 2 * * *", 30*time.Minute, berlin), window(t, Allow, "15 2 * * *", 30*time.Minute, berlin)},
	}
	starts := []time.Time{
		time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC),
	}
	for i, ws := range sets {
		for _, start := range starts {
			type span struct{ from, to time.Time }
			var allow, deny []span
			own := make([][]span, len(ws))
			for j, w := range ws {
				for _, o := range occurrences(w.Schedule, start.Add(-4*24*time.Hour), start.Add(12*24*time.Hour), w.location()) {
					own[j] = append(own[j], span{o, o.Add(w.Duration)})
				}
				if w.Kind == Allow {
					allow = append(allow, own[j]...)
				} else {
					deny = append(deny, own[j]...)
				}
			}
			covers := func(spans []span, at time.Time) bool {
				return slices.ContainsFunc(spans, func(s span) bool { return !at.Before(s.from) && at.Before(s.to) })
			}
			open := func(at time.Time) bool {
				return !covers(deny, at) && (len(allow) == 0 || covers(allow, at))
			}
			for at := start; at.Before(start.Add(3 * 24 * time.Hour)); at = at.Add(37 * time.Minute) {
				var want time.Time
				for m := at; m.Before(start.Add(10 * 24 * time.Hour)); m = m.Add(time.Minute) {
					if open(m) {
						want = m
						break
					}
				}
				got, ok := nextOpen(ws, at, at.Add(Horizon))
				if want.IsZero() || !ok || !got.Equal(want) {
					t.Errorf("set %d: nextOpen(%v) = %v, %v; want %v", i, at, got, ok, want)
				}
				for j, w := range ws {
					if got := w.Active(at); got != covers(own[j], at) {
						t.Errorf("set %d: window %d: Active(%v) = %v", i, j, at, got)
					}
				}
			}
		}
	}
}

func TestEvaluateAll(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	daily := func(expr string, d time.Duration) []Window { return []Window{window(t, Allow, expr, d, nil)} }
	approved := Facts{Author: "alice", CanWrite: map[string]bool{"bob": true, "carol": true}, Reviews: []Review{
		{User: "bob", State: ReviewApproved, PlanHash: "p"}, {User: "carol", State: ReviewApproved, PlanHash: "q"},
	}}
	check := func(app string, p Policy, plan string, now time.Time) Check {
		f := approved
		f.PlanHash, f.Now = plan, now
		return Check{App: app, Policy: p, Facts: f}
	}
	tests := []struct {
		name     string
		checks   []Check
		reasons  []string
		nextOpen string
		state    State
	}{{
		name:  "no apps",
		state: StateSuccess,
	}, {
		name: "every app approved",
		checks: []Check{
			check("web", Policy{MinApprovals: 1}, "p", at("2026-12-01 08:00")),
			check("api", Policy{MinApprovals: 1}, "q", at("2026-12-01 08:00")),
		},
		state: StateSuccess,
	}, {
		name: "one app short of approvals",
		checks: []Check{
			check("web", Policy{MinApprovals: 1}, "p", at("2026-12-01 08:00")),
			check("api", Policy{MinApprovals: 2}, "q", at("2026-12-01 08:00")),
		},
		reasons: []string{"api: 1 of 2 approvals", "api: @bob's approval was given on an unknown commit, whose plan differs from the head's; review the new plan and approve again"},
		state:   StatePending,
	}, {
		name: "one app blocked",
		checks: []Check{
			check("web", Policy{Users: []string{"alice"}}, "p", at("2026-12-01 08:00")),
			check("api", Policy{MinApprovals: 3}, "q", at("2026-12-01 08:00")),
		},
		reasons: []string{
			"web: @alice is a required reviewer but is the author, so cannot approve; change the policy's users",
			"web: @carol's approval was given on an unknown commit, whose plan differs from the head's; review the new plan and approve again",
			"api: 1 of 3 approvals",
			"api: @bob's approval was given on an unknown commit, whose plan differs from the head's; review the new plan and approve again",
		},
		state: StateFailure,
	}, {
		name: "windows open one after the other",
		checks: []Check{
			check("web", Policy{Windows: daily("0 9 * * *", 3*time.Hour)}, "p", at("2026-12-01 08:00")),
			check("api", Policy{Windows: daily("0 11 * * *", 6*time.Hour)}, "p", at("2026-12-01 08:00")),
			check("docs", Policy{}, "p", at("2026-12-01 08:00")),
		},
		reasons:  []string{"web: deploy window closed until 2026-12-01 09:00 UTC", "api: deploy window closed until 2026-12-01 11:00 UTC"},
		nextOpen: "2026-12-01 11:00",
		state:    StatePending,
	}, {
		name: "one window open, the other later",
		checks: []Check{
			check("web", Policy{Windows: daily("0 9 * * *", 3*time.Hour)}, "p", at("2026-12-01 10:00")),
			check("api", Policy{Windows: daily("0 11 * * *", 6*time.Hour)}, "p", at("2026-12-01 10:00")),
		},
		reasons:  []string{"api: deploy window closed until 2026-12-01 11:00 UTC"},
		nextOpen: "2026-12-01 11:00",
		state:    StatePending,
	}, {
		name: "windows open together only later than each alone",
		checks: []Check{
			check("web", Policy{Windows: daily("0 9 * * MON", 2*time.Hour)}, "p", at("2026-12-01 12:00")),
			check("api", Policy{Windows: daily("0 10 1 * *", time.Hour)}, "p", at("2026-12-01 12:00")),
			check("docs", Policy{}, "p", at("2026-12-01 12:00")),
		},
		reasons: []string{
			"web: deploy window closed until 2026-12-07 09:00 UTC",
			"api: deploy window closed until 2027-01-01 10:00 UTC",
			"the deploy windows of web, api are next open together at 2027-02-01 10:00 UTC",
		},
		nextOpen: "2027-02-01 10:00",
		state:    StatePending,
	}, {
		name: "windows never open together",
		checks: []Check{
			check("web", Policy{Windows: daily("0 9 * * *", 3*time.Hour)}, "p", at("2026-12-01 08:00")),
			check("api", Policy{Windows: daily("0 14 * * *", 3*time.Hour)}, "p", at("2026-12-01 08:00")),
		},
		reasons: []string{
			"web: deploy window closed until 2026-12-01 09:00 UTC",
			"api: deploy window closed until 2026-12-01 14:00 UTC",
			"the deploy windows of web, api are never open at the same time within a year",
		},
		state: StateFailure,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := EvaluateAll(tt.checks)
			if !slices.Equal(d.Reasons, tt.reasons) {
				t.Errorf("reasons:\n got %q\nwant %q", d.Reasons, tt.reasons)
			}
			if got := d.NextOpen.Format("2006-01-02 15:04"); (tt.nextOpen == "") != d.NextOpen.IsZero() || (tt.nextOpen != "" && got != tt.nextOpen) {
				t.Errorf("NextOpen = %v, want %s", d.NextOpen, tt.nextOpen)
			}
			if d.SyncState() != tt.state {
				t.Errorf("SyncState = %v, want %v", d.SyncState(), tt.state)
			}
			if len(d.Apps) != len(tt.checks) {
				t.Errorf("%d app decisions for %d checks", len(d.Apps), len(tt.checks))
			}
			for i, a := range d.Apps {
				if a.App != tt.checks[i].App {
					t.Errorf("Apps[%d].App = %q", i, a.App)
				}
			}
		})
	}
}

func TestEvaluateAllApprovers(t *testing.T) {
	f := Facts{CanWrite: map[string]bool{"bob": true, "carol": true}, PlanHash: "p"}
	web, api := f, f
	web.Reviews = []Review{{User: "bob", State: ReviewApproved, PlanHash: "p"}}
	api.Reviews = []Review{{User: "carol", State: ReviewApproved, PlanHash: "p"}, {User: "bob", State: ReviewApproved, PlanHash: "p"}}
	d := EvaluateAll([]Check{{App: "web", Facts: web}, {App: "api", Facts: api}})
	if !slices.Equal(d.Approvers, []string{"bob", "carol"}) || !d.Allowed {
		t.Errorf("Approvers = %q, Allowed = %v", d.Approvers, d.Allowed)
	}
}

// BenchmarkNextOpen measures the search for the next open time: from a
// weekend through office hours, and through a year of an every-minute deny
// window that never ends (the worst case: one step per occurrence).
func BenchmarkNextOpen(b *testing.B) {
	berlin := mustLoad(b, "Europe/Berlin")
	from := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	b.Run("office", func(b *testing.B) {
		ws := []Window{window(b, Allow, "0 9 * * 1-5", 8*time.Hour, berlin), window(b, Deny, "0 12 * * *", time.Hour, berlin), window(b, Deny, "0 18 * * FRI", 63*time.Hour, berlin)}
		for b.Loop() {
			nextOpen(ws, from, from.Add(Horizon))
		}
	})
	b.Run("never", func(b *testing.B) {
		ws := []Window{window(b, Deny, "* * * * *", 2*time.Minute, berlin)}
		for b.Loop() {
			nextOpen(ws, from, from.Add(Horizon))
		}
	})
}
