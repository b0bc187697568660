package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// APIVersion and Kind identify a gitops.yaml document.
const (
	APIVersion = "gitops.kubectl.dev/v1alpha1"
	Kind       = "Repository"
	// FileName is the name searched for upward from a path.
	FileName = "gitops.yaml"
)

// Repository is the whole gitops.yaml file.
type Repository struct {
	APIVersion    string        `yaml:"apiVersion"`
	Kind          string        `yaml:"kind"`
	Apps          []App         `yaml:"apps"`
	Images        []ImagePolicy `yaml:"images,omitempty"`
	Approvals     []Approval    `yaml:"approvals,omitempty"`
	Notifications Notifications `yaml:"notifications,omitempty"`
	// Sources limits which third-party Git sources apps may use.
	Sources SourcePolicy `yaml:"sources,omitempty"`
	// Sync is the default of the apps' sync: how the bot syncs them.
	Sync SyncMode `yaml:"sync,omitempty"`

	// File is the absolute path the repository file was read from; Dir is its folder
	// (the repository root that app paths are relative to). Set by Load.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`

	// name is the file as the caller named it, for messages; lines maps field
	// paths such as "apps[2].path" to their line in the file.
	name  string
	lines map[string]int
}

// App is one deployable unit: a folder of plain YAML, a kustomization or a chart.
//
// Path is the app's folder relative to the repository root; it is required
// unless the app has a Source or a remote Helm chart. With a Source, the
// rendered folder is Source.Path inside the fetched source. A local Helm chart
// and Helm values files are relative paths that Validate keeps from climbing
// out of the repository (or source) from the app's folder; no path may be
// absolute.
type App struct {
	Name      string     `yaml:"name"`
	Path      string     `yaml:"path,omitempty"`
	Namespace string     `yaml:"namespace,omitempty"`
	Cluster   string     `yaml:"cluster,omitempty"`
	Source    *GitSource `yaml:"source,omitempty"`
	Patches   []Patch    `yaml:"patches,omitempty"`
	Images    []Image    `yaml:"images,omitempty"`
	Helm      *Helm      `yaml:"helm,omitempty"`
	DependsOn []string   `yaml:"dependsOn,omitempty"`
	Prune     bool       `yaml:"prune,omitempty"`
	Wait      *Wait      `yaml:"wait,omitempty"`
	Approval  string     `yaml:"approval,omitempty"`
	// Sync is how the bot syncs the app; empty means the repository's.
	Sync    SyncMode `yaml:"sync,omitempty"`
	Suspend bool     `yaml:"suspend,omitempty"`
	Line    int      `yaml:"-"` // line of the app in gitops.yaml, for messages
}

// SyncMode says how the bot syncs an app: one of the Sync* constants.
type SyncMode string

// Values of sync.
const (
	// SyncOnMerge: the bot applies the app when a pull request that
	// passed its approval policy is merged into the default branch, and on
	// `/gitops sync` in the pull request.
	SyncOnMerge SyncMode = "onMerge"
	// SyncManual: the bot applies the app only on `/gitops sync`; merges
	// are not applied (apply them with `kubectl gitops apply`). The
	// default.
	SyncManual SyncMode = "manual"
)

// GitSource is a third-party Git repository the app's path is read from instead of
// this repository. The engine fetches it (never kustomize), pinned to Ref.
type GitSource struct {
	Git  string `yaml:"git"`
	Ref  string `yaml:"ref"`
	Path string `yaml:"path,omitempty"`
}

// Patch is an in-line patch: a strategic-merge patch or a JSON6902 patch, applied
// to the objects that Target selects (all objects the patch names when Target is nil).
type Patch struct {
	Target *Selector `yaml:"target,omitempty"`
	Patch  string    `yaml:"patch"`
}

// Selector selects objects like a kustomize patch target.
type Selector struct {
	Group              string `yaml:"group,omitempty"`
	Version            string `yaml:"version,omitempty"`
	Kind               string `yaml:"kind,omitempty"`
	Name               string `yaml:"name,omitempty"`
	Namespace          string `yaml:"namespace,omitempty"`
	LabelSelector      string `yaml:"labelSelector,omitempty"`
	AnnotationSelector string `yaml:"annotationSelector,omitempty"`
}

// Image overrides an image reference, like kustomize's images field.
type Image struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName,omitempty"`
	NewTag  string `yaml:"newTag,omitempty"`
	Digest  string `yaml:"digest,omitempty"`
}

// Helm makes the app a Helm release.
//
// Chart is a local chart folder (relative to the app's folder), a chart name in
// the chart repository Repo, or an oci:// reference; Version is a semver
// constraint (such as 6.7.x) for remote charts.
type Helm struct {
	Chart       string         `yaml:"chart"`
	Repo        string         `yaml:"repo,omitempty"`
	Version     string         `yaml:"version,omitempty"`
	ReleaseName string         `yaml:"releaseName,omitempty"`
	Values      map[string]any `yaml:"values,omitempty"`
	ValuesFiles []string       `yaml:"valuesFiles,omitempty"`
}

// Remote reports whether the chart comes from a chart repository or an OCI
// registry rather than from a folder.
func (h *Helm) Remote() bool {
	return h.Repo != "" || strings.HasPrefix(h.Chart, "oci://")
}

// Wait configures health waiting after apply: how long `apply --wait` (and a
// Helm release's hooks) may wait for the app's objects. Default sets Timeout
// to DefaultWaitTimeout when it is zero.
type Wait struct {
	Timeout Duration `yaml:"timeout,omitempty"`
}

// Duration is a time.Duration written as "5m" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML reads a Go duration string such as "90s", "5m" or "1h30m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string such as "5m0s".
func (d Duration) MarshalYAML() (any, error) {
	return d.Duration.String(), nil
}

func parseDuration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("expected a duration such as 30s, 5m or 1h, got a %s", kindName(n))
	}
	if n.ShortTag() == "!!null" {
		return 0, nil
	}
	if n.ShortTag() == "!!int" {
		return 0, fmt.Errorf("duration %s has no unit; write it with one, such as %ss or %sm", n.Value, n.Value, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q; use a number with a unit such as 30s, 5m or 1h", n.Value)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative; use a positive duration such as 5m", n.Value)
	}
	return v, nil
}

// ImagePolicy selects the newest tag of an image.
type ImagePolicy struct {
	Name       string      `yaml:"name"`
	Image      string      `yaml:"image"`
	Policy     TagPolicy   `yaml:"policy"`
	FilterTags *FilterTags `yaml:"filterTags,omitempty"`
	// Exclude lists regexps of tags never chosen. Unset, Default sets
	// DefaultExcludes (cosign's signature, attestation and SBOM tags); an
	// explicit empty list (exclude: []) excludes nothing.
	Exclude []string `yaml:"exclude,omitempty"`
	// Digest is how an update writes the chosen tag: DigestNone (the
	// default) writes image:tag, DigestPin writes image:tag@sha256:…, the
	// tag kept for readers and the digest deciding what runs.
	Digest DigestMode `yaml:"digest,omitempty"`
	// MinimumAge holds back a tag until its image was created at least
	// this long ago (the created time of its image config), so a release
	// pulled within hours is never proposed. A tag whose creation time is
	// unknown counts as too young while MinimumAge is set.
	MinimumAge Duration `yaml:"minimumAge,omitempty"`
	// Group names a pull request that policies share: policies with the
	// same group are updated together in one pull request. Its branch is
	// pullRequest.branch rendered with .Name set to the group name
	// (gitops/images/<group> by default), so every policy of a group must
	// have the same branch template.
	Group       string       `yaml:"group,omitempty"`
	PullRequest *PullRequest `yaml:"pullRequest,omitempty"`
	Interval    Duration     `yaml:"interval,omitempty"`
	Suspend     bool         `yaml:"suspend,omitempty"`
}

// DigestMode says whether an image update pins the digest: one of the
// Digest* constants.
type DigestMode string

// Values of digest.
const (
	// DigestNone writes image:tag. The default.
	DigestNone DigestMode = "none"
	// DigestPin writes image:tag@sha256:…, the digest the tag pointed at
	// when it was chosen.
	DigestPin DigestMode = "pin"
)

// TagPolicy is one of semver, alphabetical or numerical.
type TagPolicy struct {
	Semver       *SemverPolicy `yaml:"semver,omitempty"`
	Alphabetical *OrderPolicy  `yaml:"alphabetical,omitempty"`
	Numerical    *OrderPolicy  `yaml:"numerical,omitempty"`
}

// SemverPolicy picks the highest version in Range, a Masterminds semver
// range such as ">=1.0.0 <2.0.0" or "~6.7". Tags are read leniently (a
// leading v, and a missing minor or patch, are allowed); tags that are not
// versions are ignored. Pre-releases (1.1.0-rc.1) are chosen only when the
// range itself names one: ">=1.0.0" skips 1.1.0-rc.1, ">=1.1.0-0" takes it.
type SemverPolicy struct {
	Range string `yaml:"range"`
}

// OrderPolicy orders tags; Order is asc or desc (Default sets asc): asc picks
// the last tag in ascending order, the highest; desc the first, the lowest.
// Alphabetical order compares bytes; numerical order reads each tag as a
// floating-point number and ignores tags that are not one.
type OrderPolicy struct {
	Order string `yaml:"order,omitempty"`
}

// FilterTags keeps tags matching Pattern, a Go regular expression, and
// drops the others. With Extract, an expansion of Pattern's groups such as
// $ts or ${version} (as regexp.Expand writes it), the policy compares the
// expansion instead of the whole tag: pattern ^main-[a-f0-9]+-(?P<ts>[0-9]+)$
// with extract $ts orders main-… tags by their timestamp.
type FilterTags struct {
	Pattern string `yaml:"pattern"`
	Extract string `yaml:"extract,omitempty"`
}

// PullRequest templates the image-update pull request (text/template, with
// .Name the policy name, or the group name for a group, and .NewTag the
// chosen tag). Default sets Branch to DefaultPullRequestBranch and Title to
// DefaultPullRequestTitle.
type PullRequest struct {
	Branch string `yaml:"branch,omitempty"`
	Title  string `yaml:"title,omitempty"`
	// Body and CommitMessage, when set, replace the bot's description of
	// the pull request and message of its commit. Every field is a Go
	// template over ImageUpdateData.
	Body          string `yaml:"body,omitempty"`
	CommitMessage string `yaml:"commitMessage,omitempty"`
}

// Approval is a named approval policy: the reviews a change needs before it
// syncs, and when it may sync. Policy turns it into what the approvals
// package evaluates.
type Approval struct {
	Name string `yaml:"name"`
	// MinApprovals is how many distinct users must approve.
	MinApprovals int       `yaml:"minApprovals,omitempty"`
	Reviewers    Reviewers `yaml:"reviewers,omitempty"`
	// Codeowners requires the code owners (CODEOWNERS on the base branch)
	// of every changed file to approve.
	Codeowners bool `yaml:"codeowners,omitempty"`
	// DismissStale is commit (an approval counts only on the commit it
	// was given on) or plan (it counts while the rendered plan is the one
	// approved); Default sets DefaultDismissStale. For files written
	// before it took a name, true reads as commit and false as plan.
	DismissStale Staleness `yaml:"dismissStale,omitempty"`
	// Windows limit when a change may sync; none means any time.
	Windows []Window `yaml:"windows,omitempty"`
}

// Reviewers who must approve: every user listed, and for every team listed
// ("org/team", "@org/team", or a team of the repository's organisation) one
// of its members.
type Reviewers struct {
	Teams []string `yaml:"teams,omitempty"`
	Users []string `yaml:"users,omitempty"`
}

// Staleness says which approvals keep counting after new commits: one of
// the Stale* constants.
type Staleness string

// Values of dismissStale.
const (
	StaleCommit Staleness = "commit"
	StalePlan   Staleness = "plan"
)

// UnmarshalYAML reads commit or plan, and true (commit) or false (plan)
// as files written before the names did.
func (s *Staleness) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null":
	case n.ShortTag() == "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return err
		}
		*s = StalePlan
		if b {
			*s = StaleCommit
		}
	default:
		*s = Staleness(n.Value)
	}
	return nil
}

// Window is a deploy window of an approval policy: it opens at each time
// Schedule names, in TimeZone, and stays open for Duration. With any allow
// window, a change syncs only inside one; never inside a deny window.
type Window struct {
	Kind string `yaml:"kind"` // WindowAllow or WindowDeny
	// Schedule is a five-field cron schedule: minute hour day-of-month
	// month day-of-week, such as "0 9 * * 1-5".
	Schedule string   `yaml:"schedule"`
	Duration Duration `yaml:"duration"`
	// TimeZone is an IANA time zone such as Europe/Berlin; Default sets
	// DefaultTimeZone.
	TimeZone string `yaml:"timeZone,omitempty"`
}

// Kinds of deploy windows.
const (
	WindowAllow = "allow"
	WindowDeny  = "deny"
)

// Notifications configures outbound providers and which events they get.
type Notifications struct {
	Providers []Provider `yaml:"providers,omitempty"`
	Alerts    []Alert    `yaml:"alerts,omitempty"`
}

// Provider is an outbound notification target.
type Provider struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"` // one of the Provider* constants
	Channel string `yaml:"channel,omitempty"`
	// Address is a non-secret endpoint (an Alertmanager or generic webhook URL,
	// a self-hosted forge). URLs that carry a token belong in SecretRef.
	Address   string    `yaml:"address,omitempty"`
	SecretRef SecretRef `yaml:"secretRef,omitempty"`
}

// Provider types.
const (
	ProviderSlack        = "slack"
	ProviderDiscord      = "discord"
	ProviderMSTeams      = "msteams"
	ProviderTelegram     = "telegram"
	ProviderWebex        = "webex"
	ProviderRocket       = "rocket"
	ProviderLark         = "lark"
	ProviderGrafana      = "grafana"
	ProviderAlertmanager = "alertmanager"
	ProviderGeneric      = "generic"
	ProviderGenericHMAC  = "generic-hmac"
	ProviderGitHub       = "github"
	ProviderGitLab       = "gitlab"
)

// SecretRef names where a secret comes from; its value never appears in gitops.yaml.
type SecretRef struct {
	Env  string `yaml:"env,omitempty"`
	File string `yaml:"file,omitempty"`
}

// Alert routes events to providers.
type Alert struct {
	Providers []string `yaml:"providers"`
	// Events are Event* constants, or EventAll.
	Events []string `yaml:"events"`
	// Severity is the lowest severity sent: info (everything) or error.
	Severity string `yaml:"severity,omitempty"`
	// Apps limits the alert to events about these apps; empty means all apps.
	Apps []string `yaml:"apps,omitempty"`
}

// Events an alert can route.
const (
	EventAll              = "*"
	EventSyncSucceeded    = "sync.succeeded"
	EventSyncFailed       = "sync.failed"
	EventDriftDetected    = "drift.detected"
	EventDriftResolved    = "drift.resolved"
	EventHealthDegraded   = "health.degraded"
	EventHealthRecovered  = "health.recovered"
	EventPreviewSucceeded = "preview.succeeded"
	EventPreviewFailed    = "preview.failed"
	EventApprovalGranted  = "approval.granted"
	EventApprovalDenied   = "approval.denied"
	EventImagePROpened    = "image.pr.opened"
	EventImagePRUpdated   = "image.pr.updated"
	EventImageScanFailed  = "image.scan.failed"
)

// Severities of an alert.
const (
	SeverityInfo  = "info"
	SeverityError = "error"
)

// SourcePolicy is the allowlist for third-party Git sources.
type SourcePolicy struct {
	// Allow lists URL prefixes (scheme://host/path...) apps may fetch from.
	// Empty allows every source named in this file (the CLI's trusted default);
	// the bot reads it from the base branch.
	Allow []string `yaml:"allow,omitempty"`
}

// Allows reports whether an app may fetch the Git URL: Allow is empty, or an
// entry equals the URL or is a prefix of it that ends at a path boundary, so
// "https://github.com/acme" allows "https://github.com/acme/app.git" but not
// "https://github.com/acme-evil/app.git".
func (p SourcePolicy) Allows(url string) bool {
	if len(p.Allow) == 0 {
		return true
	}
	for _, a := range p.Allow {
		a = strings.TrimSuffix(a, "/")
		switch {
		case a == "":
		case url == a, strings.TrimSuffix(url, ".git") == strings.TrimSuffix(a, ".git"):
			return true
		case strings.HasPrefix(url, a+"/"):
			return true
		case strings.HasSuffix(a, ":") && strings.HasPrefix(url, a): // scp-like host: "git@example.com:"
			return true
		}
	}
	return false
}
