// Package lease owns the bot's state in the Kubernetes API, its only store
// (DESIGN.md §5): leader election among replicas (Elector), per-key locks
// such as one per app or per pull request (Locks, one coordination.k8s.io
// Lease each), and a small persistent key/value map (Records, one
// ConfigMap) for what must survive a restart, like the last approved plan
// of a pull request or the webhook deliveries already seen.
//
// Every write is optimistic: it carries the resourceVersion it read, and a
// conflict means someone else wrote first, so the decision is made again on
// what the API server holds now. Two processes therefore never both believe
// they hold one lock.
package lease

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
)

// Labels and annotations this package sets on its objects.
const (
	// LockLabel marks the Leases Locks manages; List selects by it.
	LockLabel = "gitops.kubectl.dev/lock"
	// KeyAnnotation holds a lock's full key, which its Lease's name only
	// hashes.
	KeyAnnotation = "gitops.kubectl.dev/lock-key"
)

// hashHex returns the first n hex digits of key's SHA-256.
func hashHex(key string, n int) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:n]
}

// checkTarget reports a misconfigured struct before any request is made.
func checkTarget(what string, client kubernetes.Interface, namespace string) error {
	if client == nil {
		return fmt.Errorf("%s has no Client: build one with kubernetes.NewForConfig", what)
	}
	if namespace == "" {
		return errors.New(what + " has no Namespace: set the namespace the bot runs in")
	}
	return nil
}
