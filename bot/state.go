package bot

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
)

// LeaderLease is the name of the Lease the replicas elect a leader with.
const LeaderLease = "gitops-bot-leader"

// State is the bot's state in Kubernetes: the Leases of leader election
// and of locks, in the namespace cfg.State names.
type State struct {
	Locks    *lease.Locks
	Elector  *lease.Elector
	Identity string
}

// NewState connects to cfg.State's cluster; nil without a state block.
func NewState(cfg Config) (*State, error) {
	if cfg.State == nil {
		return nil, nil
	}
	target, ok := NewPreviewer(cfg).Clusters[cfg.stateCluster()]
	if !ok {
		return nil, fmt.Errorf("state.cluster %q is not among clusters", cfg.stateCluster())
	}
	rest, err := target.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("state: connect to cluster %s: %w", cfg.stateCluster(), err)
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, fmt.Errorf("state: connect to cluster %s: %w", cfg.stateCluster(), err)
	}
	id := cfg.State.Identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("state: name this replica (set state.identity): %w", err)
		}
		id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return &State{
		Locks:    &lease.Locks{Client: client, Namespace: cfg.State.Namespace},
		Elector:  &lease.Elector{Client: client, Namespace: cfg.State.Namespace, Name: LeaderLease, Identity: id},
		Identity: id,
	}, nil
}
