package lease

import "strings"

// ImageStateName is the ConfigMap, in the bot's namespace, where the bot's
// image automation keeps what it must remember across scans, restarts and
// replicas (as Records): the tags Git held at the last scan, holds after a
// rollback, and its open image update pull requests.
const ImageStateName = "gitops-image-updates"

// holdPrefix starts the record of a policy's hold, statePrefix that of a
// repository's state.
const (
	holdPrefix  = "hold/"
	statePrefix = "images:"
)

// ImageStateKey is the record of what the bot remembers of repo's image
// pull requests (the forge's repository, such as github:acme/app).
func ImageStateKey(repo string) string { return statePrefix + repo }

// ImageHoldKey is the record of the hold of policy in repo (the forge's
// repository, such as github:acme/app).
func ImageHoldKey(repo, policy string) string { return holdPrefix + repo + "/" + policy }

// ParseImageHoldKey reads a key ImageHoldKey made; ok is false for other
// records.
func ParseImageHoldKey(key string) (repo, policy string, ok bool) {
	rest, ok := strings.CutPrefix(key, holdPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
