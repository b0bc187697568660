package approvals_test

import (
	"fmt"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

func ExampleEvaluate() {
	policy := approvals.Policy{
		MinApprovals: 2,
		Teams:        []string{"@acme/platform"},
	}
	d := approvals.Evaluate(policy, approvals.Facts{
		Author:   "alice",
		HeadSHA:  "9f2c1e0",
		PlanHash: "sha256:4d1c",
		Reviews: []approvals.Review{
			{User: "alice", State: approvals.ReviewApproved, SHA: "9f2c1e0", PlanHash: "sha256:4d1c"},
			{User: "carol", State: approvals.ReviewApproved, SHA: "77ab310", PlanHash: "sha256:4d1c"}, // older commit, same plan
			{User: "bob", State: approvals.ReviewChangesRequested, SHA: "9f2c1e0"},
		},
		CanWrite: map[string]bool{"alice": true, "bob": true, "carol": true},
		Teams:    map[string][]string{"acme/platform": {"dave", "erin"}},
	})
	fmt.Println(d.ApprovalState(), d.Approvers)
	for _, r := range d.Reasons {
		fmt.Println(r)
	}
	// Output:
	// pending [carol]
	// 1 of 2 approvals
	// needs approval from a member of @acme/platform
	// @bob requested changes (until they approve or the review is dismissed)
	// @alice's approval does not count: authors do not approve their own change
}

func ExampleEvaluate_window() {
	berlin, err := time.LoadLocation("Europe/Berlin") // the caller resolves zones
	if err != nil {
		panic(err)
	}
	officeHours, err := approvals.ParseCron("0 9 * * MON-FRI")
	if err != nil {
		panic(err)
	}
	policy := approvals.Policy{Windows: []approvals.Window{
		{Kind: approvals.Allow, Schedule: officeHours, Duration: 8 * time.Hour, Location: berlin},
	}}
	d := approvals.Evaluate(policy, approvals.Facts{Now: time.Date(2026, 12, 1, 19, 30, 0, 0, berlin)})
	fmt.Println(d.ApprovalState(), d.SyncState())
	fmt.Println(d.Reasons)
	// Output:
	// success pending
	// [deploy window closed until 2026-12-02 09:00 CET]
}

func ExampleEvaluateAll() {
	facts := approvals.Facts{
		PlanHash: "sha256:4d1c",
		Reviews:  []approvals.Review{{User: "bob", State: approvals.ReviewApproved, PlanHash: "sha256:4d1c"}},
		CanWrite: map[string]bool{"bob": true},
	}
	d := approvals.EvaluateAll([]approvals.Check{
		{App: "web", Policy: approvals.Policy{MinApprovals: 1}, Facts: facts},
		{App: "db", Policy: approvals.Policy{MinApprovals: 2}, Facts: facts},
	})
	fmt.Println(d.Allowed, d.Reasons)
	// Output:
	// false [db: 1 of 2 approvals]
}

func ExampleParseCodeowners() {
	c, err := approvals.ParseCodeowners(`* @acme/platform
/apps/web/ @bob

[Database][2] @carol @dave @erin
/db/
`, approvals.GitLab)
	if err != nil {
		panic(err)
	}
	for _, o := range c.Owners("db/schema.sql") {
		fmt.Printf("%q needs %d of %v\n", o.Section, o.Approvals, o.Owners)
	}
	// Output:
	// "" needs 1 of [@acme/platform]
	// "Database" needs 2 of [@carol @dave @erin]
}

func ExampleCron_Next() {
	c, err := approvals.ParseCron("30 2 * * *")
	if err != nil {
		panic(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	// The night the clocks fall back, 02:30 happens twice.
	t := time.Date(2026, 10, 25, 0, 0, 0, 0, berlin)
	for range 3 {
		t = c.Next(t)
		fmt.Println(t.Format("2006-01-02 15:04 MST"))
	}
	// Output:
	// 2026-10-25 02:30 CEST
	// 2026-10-25 02:30 CET
	// 2026-10-26 02:30 CET
}
