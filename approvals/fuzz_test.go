package approvals

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseCron checks that no schedule panics, and that a schedule that
// parses finds occurrences that match it.
func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"0 9 * * 1-5", "*/15 8-18/2 1,15 JAN-jun MON,fri", "@daily", "0 0 30 2 *", "5/7 * * * 7", "* * * * *", "59 23 31 12 SUN", "1-2,3-4/1 * * * *"} {
		f.Add(s, int64(1_790_000_000))
	}
	berlin := mustLoad(f, "Europe/Berlin")
	f.Fuzz(func(t *testing.T, expr string, unix int64) {
		c, err := ParseCron(expr)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseCron(%q) returned a schedule and an error", expr)
			}
			return
		}
		if _, err := ParseCron(c.String()); err != nil {
			t.Fatalf("String() = %q does not parse: %v", c.String(), err)
		}
		at := time.Unix(unix%(1<<34), 0).In(berlin) // within a few centuries of 1970
		if n := c.Next(at); !n.IsZero() {
			start, _ := n.ZoneBounds()
			if !n.After(at) || !c.matches(wallOf(n)) && !n.Equal(start) { // a match, or the jump over one
				t.Fatalf("%q: Next(%v) = %v", expr, at, n)
			}
			if p := c.Prev(n); !p.Equal(n) {
				t.Fatalf("%q: Prev(Next(%v)) = %v, want %v", expr, at, p, n)
			}
		}
		if p := c.Prev(at); !p.IsZero() && p.After(at) {
			t.Fatalf("%q: Prev(%v) = %v", expr, at, p)
		}
	})
}

// FuzzParseCodeowners checks that no file panics, and that matching any
// path against what parsed does not either.
func FuzzParseCodeowners(f *testing.F) {
	f.Add("* @a\n/docs/ @b @org/team x@y.z\n!*.md\n[S][2] @c\n^[T]\n**/a/**/b?[!c-e]\\ f @d\n", "docs/a b/c.md", true)
	f.Add("*.js @js # comment\n\\#x @h\n/apps/github\n", "apps/github/x", false)
	f.Add("[", "[", true)
	f.Fuzz(func(t *testing.T, text, path string, gitlab bool) {
		syntax := GitHub
		if gitlab {
			syntax = GitLab
		}
		c, _ := ParseCodeowners(text, syntax)
		if c == nil {
			t.Fatal("ParseCodeowners returned no Codeowners")
		}
		for _, o := range c.Owners(path) {
			if len(o.Owners) == 0 {
				t.Fatalf("Owners(%q) has a section with no owners: %+v", path, o)
			}
		}
	})
}

// FuzzEvaluate checks that no combination of policy and facts panics, and
// that a decision is consistent with itself.
func FuzzEvaluate(f *testing.F) {
	f.Add(uint8(2), "bob,carol", "acme/platform", true, "commit", "0 9 * * 1-5", int64(8*time.Hour), "* @acme/platform\n/db/ @carol", true,
		"alice", "bob:approved:h:p,carol:changes_requested:h:p,carol:approved:o:p,eve:approved:h:p", "h", "p", "db/x.sql,README.md", int64(1_790_000_000))
	f.Add(uint8(0), "", "", false, "", "", int64(0), "", false, "", "", "", "", "", int64(0))
	f.Add(uint8(255), "@@x", "@/", true, "plan", "* * * * *", int64(-1), "[x][2] @a\n!/", true,
		"@", "a:approved::,a:dismissed::,:approved::", "", "", "/,./,", int64(-1<<40))
	f.Fuzz(func(t *testing.T, min uint8, users, teams string, codeowners bool, stale, schedule string, duration int64, owners string, gitlab bool,
		author, reviews, headSHA, planHash, files string, unix int64) {
		p := Policy{MinApprovals: int(min), Users: split(users), Teams: split(teams), Codeowners: codeowners, DismissStale: Staleness(stale)}
		if c, err := ParseCron(schedule); err == nil {
			// Durations up to about a week, both kinds.
			d := time.Duration(duration % int64(7*24*time.Hour))
			p.Windows = []Window{{Kind: Deny, Schedule: c, Duration: d}, {Kind: Allow, Schedule: c, Duration: 2 * d}}
		}
		syntax := GitHub
		if gitlab {
			syntax = GitLab
		}
		co, _ := ParseCodeowners(owners, syntax)
		fs := Facts{
			Now:          time.Unix(unix%(1<<34), 0),
			Author:       author,
			Pushers:      split(author),
			Bots:         []string{"bot"},
			HeadSHA:      headSHA,
			PlanHash:     planHash,
			CanWrite:     map[string]bool{"bob": true, "carol": true, "eve": false, "a": true},
			Teams:        map[string][]string{"acme/platform": {"carol", "dave"}, "a": {"bob"}},
			Emails:       map[string]string{"x@y.z": "bob"},
			ChangedFiles: split(files),
			Codeowners:   co,
		}
		for i, r := range split(reviews) {
			parts := strings.SplitN(r+":::", ":", 5)
			fs.Reviews = append(fs.Reviews, Review{User: parts[0], State: ReviewState(parts[1]), SHA: parts[2], PlanHash: parts[3], At: time.Unix(int64(i%3), 0)})
		}
		d := Evaluate(p, fs)
		switch {
		case d.Allowed && (d.Pending || len(d.Reasons) > 0 || !d.Approved || !d.Open):
			t.Fatalf("allowed but %+v", d)
		case !d.Allowed && len(d.Reasons) == 0:
			t.Fatalf("not allowed without a reason: %+v", d)
		case d.Approved && (d.Blocked || len(d.ApprovalReasons) > 0):
			t.Fatalf("approved but %+v", d)
		case d.Blocked && d.Pending:
			t.Fatalf("blocked but pending: %+v", d)
		case !d.Open && d.Pending && d.NextOpen.IsZero():
			t.Fatalf("closed and pending without NextOpen: %+v", d)
		}
		all := EvaluateAll([]Check{{App: "a", Policy: p, Facts: fs}, {App: "b", Facts: fs}})
		if all.Approved != d.Approved || all.Blocked != d.Blocked || all.Open != d.Open || !all.NextOpen.Equal(d.NextOpen) {
			t.Fatalf("EvaluateAll of one policy and none = %+v, Evaluate = %+v", all, d)
		}
		Needs(p, fs)
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
