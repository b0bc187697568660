package bot

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// RecordStore keeps small records that survive a restart and are shared by
// the replicas: a lease.Records (one ConfigMap in the bot's namespace) in
// the service. It is a memory, not a database: a record may be gone.
type RecordStore interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
	Keys(ctx context.Context) ([]string, error)
}

var _ RecordStore = (*lease.Records)(nil)

// approvedRecord is the last plan approved of a pull request: the head it
// was approved on and the plan hash of each app it touches there.
type approvedRecord struct {
	SHA   string            `json:"sha"`
	Plans map[string]string `json:"plans"`
}

func approvedKey(pr scm.PRRef) string { return "approved:" + pr.String() }

// rememberApproved records that pr's head was approved with plans, once
// per head and plans, so that a restarted bot (or another replica) judges
// its merge without rendering it again. A failed write costs only that
// render, so it is not an error of the gate.
func (p *Previewer) rememberApproved(ctx context.Context, pr *scm.PullRequest, plans map[string]string) {
	if p.Records == nil || len(plans) == 0 {
		return
	}
	value, err := json.Marshal(approvedRecord{SHA: pr.HeadSHA, Plans: plans})
	if err != nil {
		return
	}
	key := approvedKey(pr.Ref)
	if p.planCache().reported(key, string(value)) {
		return
	}
	if err := p.Records.Put(ctx, key, string(value)); err == nil {
		p.planCache().setReported(key, string(value))
	}
}

// recallApproved puts the plans last approved of pr into the plan cache
// when they were approved on sha, and reports whether they were.
func (p *Previewer) recallApproved(ctx context.Context, pr scm.PRRef, sha string) bool {
	if p.Records == nil {
		return false
	}
	value, ok, err := p.Records.Get(ctx, approvedKey(pr))
	if err != nil || !ok {
		return false
	}
	var rec approvedRecord
	if json.Unmarshal([]byte(value), &rec) != nil || rec.SHA != sha {
		return false
	}
	for _, app := range slices.Sorted(maps.Keys(rec.Plans)) {
		p.planCache().put(pr.Repo.String(), sha, app, rec.Plans[app])
	}
	return true
}
