// Package approvals decides whether a change may sync: pure policy, from a
// Policy (the approval rules of gitops.yaml, read from the base branch) and
// Facts (reviews, the head commit, code owners, who pushed) to a Decision
// with its reasons.
//
// It does no I/O and reads no clock, so every decision can be tested as a
// table and replayed; it imports only the standard library.
package approvals
