// Package images owns image automation: tag policies, registry scanning and
// setter-marker rewriting.
//
// A Policy, compiled from a gitops.yaml image policy, chooses the tag to
// propose among the tags a scan found. It reads no registry and no clock:
// the caller passes the tags and the time.
package images
