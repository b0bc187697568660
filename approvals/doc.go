// Package approvals decides whether a change may sync: pure policy, from a
// Policy (the approval rules of gitops.yaml, read from the base branch) and
// Facts (reviews, the head commit and its plan hash, code owners, who wrote
// the change, the time) to a Decision with reasons a person can act on.
//
// The rules: a minimum of approvals from distinct users; required users,
// and required teams that need an approval from one of their members;
// code owners (GitHub's and GitLab's CODEOWNERS, see ParseCodeowners) of
// every changed file; the author, whoever pushed to the change, the bot
// and users without write access never count; a user's latest verdict
// wins, so a changes request blocks until that user approves or the review
// is dismissed; approvals go stale with a new commit (StaleCommit) or only
// with a new plan (StalePlan, the default). Deploy windows (Window, with
// schedules in cron syntax, see ParseCron) say when a sync may run, and
// the decision says when they next open.
//
// The package does no I/O and reads no clock, so every decision can be
// tested as a table and replayed: the caller reads the facts from the forge
// (Needs says which), resolves time zones, and passes the time in. It
// imports only the standard library.
package approvals
