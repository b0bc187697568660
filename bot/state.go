package bot

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
)

// LeaderLease is the name of the Lease the replicas elect a leader with.
const LeaderLease = "gitops-bot-leader"

// State is the bot's state in Kubernetes, in the namespace cfg.State
// names: the Leases of leader election and of locks, and the ConfigMaps of
// records.
type State struct {
	Locks    *lease.Locks
	Elector  *lease.Elector
	Identity string
	// Approvals keep the last approved plan of each pull request
	// (Previewer.Records), Deliveries the webhook deliveries handled
	// (Deps.Deliveries): ConfigMaps ApprovalsRecord and DeliveriesRecord.
	Approvals, Deliveries *lease.Records
	// Images keep image automation's memory (ConfigMap
	// lease.ImageStateName); Suspensions is its switch.
	Images      *lease.Records
	Suspensions *lease.Suspensions
	// pullSecrets reads the registry credentials images.pullSecrets
	// names.
	pullSecrets pullSecrets
}

// The ConfigMaps of the bot's records.
const (
	ApprovalsRecord  = "gitops-bot-approvals"
	DeliveriesRecord = "gitops-bot-deliveries"
)

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
		Locks:       &lease.Locks{Client: client, Namespace: cfg.State.Namespace},
		Elector:     &lease.Elector{Client: client, Namespace: cfg.State.Namespace, Name: LeaderLease, Identity: id},
		Identity:    id,
		Approvals:   &lease.Records{Client: client, Namespace: cfg.State.Namespace, Name: ApprovalsRecord},
		Deliveries:  &lease.Records{Client: client, Namespace: cfg.State.Namespace, Name: DeliveriesRecord},
		Images:      &lease.Records{Client: client, Namespace: cfg.State.Namespace, Name: lease.ImageStateName},
		Suspensions: &lease.Suspensions{Client: client, Namespace: cfg.State.Namespace},
		pullSecrets: pullSecrets{client: client, namespace: cfg.State.Namespace},
	}, nil
}
