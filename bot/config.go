package bot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
)

// Defaults for Config fields left empty.
const (
	DefaultListen            = ":8080"
	DefaultWorkers           = 4
	DefaultJobTimeout        = 10 * time.Minute
	DefaultReconcileInterval = 5 * time.Minute
	// DefaultMaxBodyBytes matches Flux's receiver limit (3 MiB).
	DefaultMaxBodyBytes int64 = 3 << 20
	// DefaultMaxBodyBytesInFlight bounds the webhook bodies held in memory
	// at once, verified or not: 64 MiB, twice that with the garbage
	// collector's headroom, leaves the bot far below the Deployment's
	// 512 Mi limit with its other memory (about 100 MB).
	DefaultMaxBodyBytesInFlight int64 = 64 << 20
	// DefaultMaxConnections bounds open HTTP connections (further bounded
	// by the open-file limit): an idle connection costs about 10 KB of
	// buffers and goroutine stack, so 4,096 cost about 40 MB.
	DefaultMaxConnections = 4096
)

// Config is the bot's service configuration: a YAML file whose secrets are
// references ({env: NAME} or {file: path}) resolved at load time.
type Config struct {
	// Listen is the HTTP listen address.
	Listen string        `yaml:"listen"`
	GitHub *GitHubConfig `yaml:"github"`
	GitLab *GitLabConfig `yaml:"gitlab"`
	// Clusters maps a cluster name to how to reach it.
	Clusters map[string]ClusterConfig `yaml:"clusters"`
	// DefaultCluster is the cluster of apps that name none.
	DefaultCluster string `yaml:"defaultCluster"`
	// CacheDir holds checkouts; default $TMPDIR/gitops-bot.
	CacheDir string `yaml:"cacheDir"`
	// Workers bounds how many jobs run at once.
	Workers int `yaml:"workers"`
	// JobTimeout bounds one job.
	JobTimeout time.Duration `yaml:"jobTimeout"`
	// ReconcileInterval is how often open pull requests are re-listed.
	ReconcileInterval time.Duration `yaml:"reconcileInterval"`
	// AllowForks lets pull requests from forks get previews.
	AllowForks bool `yaml:"allowForks"`
	// MaxBodyBytes bounds a webhook body; larger deliveries get 413.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxBodyBytesInFlight bounds the bodies of all webhook deliveries
	// being read or handled at once (a chunked one counts as
	// MaxBodyBytes); a delivery that finds no room within a short wait gets
	// 503 with Retry-After. Default 64 MiB, at least MaxBodyBytes.
	MaxBodyBytesInFlight int64 `yaml:"maxBodyBytesInFlight"`
	// MaxConnections bounds open HTTP connections; at the bound the oldest
	// connection without a request in progress is closed for the new one,
	// so /healthz and /readyz keep answering. Default 4096, and always
	// below the open-file limit with headroom.
	MaxConnections int `yaml:"maxConnections"`
	// Render bounds every render of a pull request, each run in a child
	// process with no network: timeout (wall time, default 60s), memory
	// (a quantity such as 1Gi or 512Mi, default 1Gi), cpu (CPU time,
	// default the timeout) and maxOutputBytes (default 256 MiB). A render
	// over a limit is stopped and reported in the comment as that app's
	// error; other apps and pull requests go on.
	Render RenderConfig `yaml:"render"`
	// State keeps the bot's state in Kubernetes Leases (leader election,
	// the locks of apps synced before merging, apply locks), so several
	// replicas can run; without it the bot must run as one replica and its
	// locks live in memory.
	State *StateConfig `yaml:"state"`
	// Images turns image automation on: image update pull requests for
	// the image policies of each reconciled repository's gitops.yaml.
	Images *ImagesConfig `yaml:"images"`
}

// ImagesConfig configures image automation.
type ImagesConfig struct {
	// CheckInterval is how often the bot looks for newer tags (default
	// 1m); each policy's interval (default 5m) decides when its registry
	// is listed again, and a receiver's hint lists it at once.
	CheckInterval time.Duration `yaml:"checkInterval"`
	// Author is the name and email of the bot's commits.
	Author ImageAuthor `yaml:"author"`
	// SigningKey signs the bot's commits: an SSH private key (format ssh)
	// or an armored OpenPGP private key (format gpg), read from a file.
	SigningKey *SigningKey `yaml:"signingKey"`
	// MaxOpenPullRequests bounds the open image pull requests per
	// repository (default 10), MaxNewPullRequestsPerHour those opened in
	// an hour (default 2).
	MaxOpenPullRequests       int `yaml:"maxOpenPullRequests"`
	MaxNewPullRequestsPerHour int `yaml:"maxNewPullRequestsPerHour"`
	// Registry credentials, read again before the checks (at most every
	// 10s), so rotated ones are used without a restart. A registry takes
	// them from the first of these that has some for it:
	// DockerConfig is a Docker config.json file (such as a mounted Secret
	// of type kubernetes.io/dockerconfigjson); PullSecrets names Secrets
	// of that type in the bot's namespace (state.namespace), read through
	// the API (the state Role grants get on them); and the environment's
	// GITOPS_REGISTRY_HOST, _USERNAME and _PASSWORD.
	DockerConfig string   `yaml:"dockerConfig"`
	PullSecrets  []string `yaml:"pullSecrets"`
}

// ImageAuthor is who the bot's commits say wrote them.
type ImageAuthor struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// SigningKey is a key that signs commits.
type SigningKey struct {
	Format     string `yaml:"format"` // ssh or gpg
	File       string `yaml:"file"`
	Passphrase Secret `yaml:"passphrase"`
}

// GitHubConfig configures the GitHub forge (a GitHub App, or a token).
type GitHubConfig struct {
	BaseURL        string `yaml:"baseURL"`
	AppID          int64  `yaml:"appID"`
	PrivateKeyFile string `yaml:"privateKeyFile"`
	Token          Secret `yaml:"token"`
	WebhookSecret  Secret `yaml:"webhookSecret"`
	// Repositories is the allowlist: "owner/name", "owner/*", "!owner/name".
	// Entries without a wildcard or "!" are also reconciled.
	Repositories []string `yaml:"repositories"`
}

// GitLabConfig configures the GitLab forge.
type GitLabConfig struct {
	BaseURL       string `yaml:"baseURL"`
	Token         Secret `yaml:"token"`
	WebhookSecret Secret `yaml:"webhookSecret"`
	// Repositories is the allowlist: "group/project", "group/*",
	// "!group/project". Entries without a wildcard or "!" are also reconciled.
	Repositories []string `yaml:"repositories"`
}

// ClusterConfig says how to reach a cluster: a kubeconfig file and/or one
// of its contexts; both empty means the cluster the bot runs in, through its
// service account (kubectl's default loading rules).
type ClusterConfig struct {
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
}

// stateCluster is the cluster of the bot's state.
func (c *Config) stateCluster() string {
	if c.State != nil && c.State.Cluster != "" {
		return c.State.Cluster
	}
	return c.DefaultCluster
}

// StateConfig says where the bot keeps its Leases.
type StateConfig struct {
	// Cluster is one of clusters; empty means defaultCluster.
	Cluster string `yaml:"cluster"`
	// Namespace holds the Leases: the bot's own namespace.
	Namespace string `yaml:"namespace"`
	// Identity names this replica; empty means $POD_NAME, else the host
	// name.
	Identity string `yaml:"identity"`
}

// LoadConfig reads the YAML file at path, resolves its secret references
// from the process environment and the file system, applies defaults and
// validates it.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bot config: %w", err)
	}
	return ParseConfig(data, os.LookupEnv)
}

// ParseConfig is LoadConfig on bytes, with lookupEnv standing for
// os.LookupEnv.
func ParseConfig(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse bot config: %w", err)
	}
	for _, s := range cfg.secrets() {
		if err := s.resolve(lookupEnv); err != nil {
			return nil, err
		}
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) secrets() []*Secret {
	var out []*Secret
	if c.GitHub != nil {
		out = append(out, &c.GitHub.Token, &c.GitHub.WebhookSecret)
	}
	if c.GitLab != nil {
		out = append(out, &c.GitLab.Token, &c.GitLab.WebhookSecret)
	}
	if c.Images != nil && c.Images.SigningKey != nil {
		out = append(out, &c.Images.SigningKey.Passphrase)
	}
	return out
}

// ApplyDefaults fills fields left at their zero value.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(os.TempDir(), "gitops-bot")
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyBytesInFlight == 0 {
		c.MaxBodyBytesInFlight = max(DefaultMaxBodyBytesInFlight, c.MaxBodyBytes)
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if im := c.Images; im != nil {
		if im.CheckInterval == 0 {
			im.CheckInterval = DefaultImageCheckInterval
		}
		if im.Author.Name == "" {
			im.Author.Name = DefaultImageAuthorName
		}
		if im.Author.Email == "" {
			im.Author.Email = DefaultImageAuthorEmail
		}
		if im.MaxOpenPullRequests == 0 {
			im.MaxOpenPullRequests = DefaultMaxOpenImagePullRequests
		}
		if im.MaxNewPullRequestsPerHour == 0 {
			im.MaxNewPullRequestsPerHour = DefaultMaxNewImagePullRequests
		}
	}
}

// Validate reports every problem with the configuration at once. A forge
// configured without a webhook secret is an error: the bot fails closed.
func (c *Config) Validate() error {
	var errs []error
	if c.GitHub == nil && c.GitLab == nil {
		errs = append(errs, errors.New("configure at least one forge (github or gitlab)"))
	}
	if c.GitHub != nil {
		if c.GitHub.WebhookSecret.Empty() {
			errs = append(errs, errors.New("github.webhookSecret is empty: set it to {env: NAME} or {file: path}; the bot refuses unsigned deliveries"))
		}
		if c.GitHub.AppID == 0 && c.GitHub.Token.Empty() {
			errs = append(errs, errors.New("github: set appID and privateKeyFile (GitHub App) or token"))
		}
		if c.GitHub.AppID != 0 && c.GitHub.PrivateKeyFile == "" {
			errs = append(errs, errors.New("github.privateKeyFile is required with github.appID"))
		}
		errs = append(errs, validatePatterns("github.repositories", c.GitHub.Repositories)...)
	}
	if c.GitLab != nil {
		if c.GitLab.WebhookSecret.Empty() {
			errs = append(errs, errors.New("gitlab.webhookSecret is empty: set it to {env: NAME} or {file: path}; the bot refuses unauthenticated deliveries"))
		}
		if c.GitLab.Token.Empty() {
			errs = append(errs, errors.New("gitlab.token is empty: set it to {env: NAME} or {file: path}"))
		}
		errs = append(errs, validatePatterns("gitlab.repositories", c.GitLab.Repositories)...)
	}
	if _, ok := c.Clusters[c.DefaultCluster]; c.DefaultCluster != "" && !ok {
		errs = append(errs, fmt.Errorf("defaultCluster %q is not among clusters", c.DefaultCluster))
	}
	for name := range c.Clusters {
		if name == "" {
			errs = append(errs, errors.New("clusters: a cluster has an empty name"))
		}
	}
	if st := c.State; st != nil {
		if st.Namespace == "" {
			errs = append(errs, errors.New("state.namespace is empty: name the namespace the bot's Leases live in (its own)"))
		}
		if _, ok := c.Clusters[c.stateCluster()]; !ok {
			errs = append(errs, fmt.Errorf("state.cluster %q is not among clusters; name one (or set defaultCluster)", c.stateCluster()))
		}
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	if im := c.Images; im != nil {
		if im.CheckInterval < time.Second {
			errs = append(errs, fmt.Errorf("images.checkInterval %s is below 1s; use a duration such as 1m", im.CheckInterval))
		}
		if im.MaxOpenPullRequests < 0 || im.MaxNewPullRequestsPerHour < 0 {
			errs = append(errs, errors.New("images.maxOpenPullRequests and images.maxNewPullRequestsPerHour must be positive"))
		}
		if strings.ContainsAny(im.Author.Name+im.Author.Email, "<>\n") {
			errs = append(errs, errors.New("images.author: a name or email with <, > or a line break; write them plainly"))
		}
		if len(im.PullSecrets) > 0 && c.State == nil {
			errs = append(errs, errors.New("images.pullSecrets: the Secrets are read from the bot's namespace; add state: {namespace: NAME}"))
		}
		for i, name := range im.PullSecrets {
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("images.pullSecrets[%d] %q is not a Secret name: %s", i, name, strings.Join(msgs, "; ")))
			}
		}
		if k := im.SigningKey; k != nil && ((k.Format != "ssh" && k.Format != "gpg") || k.File == "") {
			errs = append(errs, fmt.Errorf("images.signingKey: format %q and file %q; set format to ssh or gpg and file to the private key's path", k.Format, k.File))
		}
	}
	if c.JobTimeout <= 0 {
		errs = append(errs, fmt.Errorf("jobTimeout must be positive, got %s", c.JobTimeout))
	}
	if c.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconcileInterval must be positive, got %s", c.ReconcileInterval))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("maxBodyBytes must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxBodyBytesInFlight < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("maxBodyBytesInFlight (%d) must be at least maxBodyBytes (%d), or no chunked delivery could be read", c.MaxBodyBytesInFlight, c.MaxBodyBytes))
	}
	if c.MaxConnections < 16 {
		errs = append(errs, fmt.Errorf("maxConnections must be at least 16, got %d", c.MaxConnections))
	}
	errs = append(errs, c.Render.validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("invalid bot config: %w", errors.Join(errs...))
	}
	return nil
}

func validatePatterns(field string, patterns []string) []error {
	var errs []error
	for i, p := range patterns {
		q := strings.TrimPrefix(p, "!")
		if q == "" || strings.TrimSpace(q) != q {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a repository pattern", field, i, p))
			continue
		}
		if i := strings.IndexByte(q, '*'); i >= 0 && i != len(q)-1 {
			errs = append(errs, fmt.Errorf("%s[%d]: %q: '*' is allowed only at the end", field, i, p))
		}
	}
	return errs
}

// Secret holds a credential. It prints, marshals and logs as "***" so it
// never reaches logs or errors; Reveal gives the value to the code that
// needs it. In YAML it is a reference, {env: NAME} or {file: path}, never the
// value itself.
type Secret struct {
	env, file string
	value     string
}

// NewSecret wraps a value (for tests and callers that build Config in code).
func NewSecret(value string) Secret { return Secret{value: value} }

const redacted = "***"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return s.value }

// Empty reports whether the secret has no value.
func (s Secret) Empty() bool { return s.value == "" }

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }
func (s Secret) MarshalYAML() (any, error)    { return redacted, nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalYAML accepts only a reference; an inline value is refused so
// secrets stay out of config files.
func (s *Secret) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a secret must be {env: NAME} or {file: path}, never an inline value", node.Line)
	}
	var ref struct {
		Env  string `yaml:"env"`
		File string `yaml:"file"`
	}
	if err := node.Decode(&ref); err != nil {
		return fmt.Errorf("line %d: a secret must be {env: NAME} or {file: path}", node.Line)
	}
	if (ref.Env == "") == (ref.File == "") {
		return fmt.Errorf("line %d: a secret must set exactly one of env or file", node.Line)
	}
	*s = Secret{env: ref.Env, file: ref.File}
	return nil
}

func (s *Secret) resolve(lookupEnv func(string) (string, bool)) error {
	switch {
	case s.env != "":
		v, ok := lookupEnv(s.env)
		if !ok {
			return fmt.Errorf("secret: environment variable %s is not set", s.env)
		}
		s.value = strings.TrimSpace(v)
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			// The error names the path only, never content.
			return fmt.Errorf("secret: read %s: %w", s.file, errors.Unwrap(err))
		}
		s.value = strings.TrimSpace(string(b))
	}
	return nil
}

// RenderConfig is the render block of the bot's config: the limits of the
// render sandbox. Zero fields take the sandbox's defaults.
type RenderConfig struct {
	Timeout        time.Duration `yaml:"timeout"`
	Memory         ByteSize      `yaml:"memory"`
	CPU            time.Duration `yaml:"cpu"`
	MaxOutputBytes ByteSize      `yaml:"maxOutputBytes"`
}

// Runner is the sandbox these limits describe.
func (c RenderConfig) Runner() sandbox.Runner {
	return sandbox.Runner{Timeout: c.Timeout, Memory: int64(c.Memory), CPU: c.CPU, MaxOutputBytes: int64(c.MaxOutputBytes)}
}

func (c RenderConfig) validate() []error {
	var errs []error
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"render.timeout", c.Timeout < 0},
		{"render.memory", c.Memory < 0},
		{"render.cpu", c.CPU < 0},
		{"render.maxOutputBytes", c.MaxOutputBytes < 0},
	} {
		if f.neg {
			errs = append(errs, fmt.Errorf("%s must not be negative; leave it out for the default", f.name))
		}
	}
	if c.Memory > 0 && c.Memory < 64<<20 {
		errs = append(errs, fmt.Errorf("render.memory %d is below 64Mi, too little for any render", c.Memory))
	}
	return errs
}

// ByteSize is a number of bytes, written in YAML as a number or a
// Kubernetes quantity ("512Mi", "1Gi").
type ByteSize int64

// UnmarshalYAML reads a number or a quantity.
func (b *ByteSize) UnmarshalYAML(node *yaml.Node) error {
	q, err := resource.ParseQuantity(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a size: write bytes or a quantity such as 512Mi or 1Gi", node.Line, node.Value)
	}
	n, ok := q.AsInt64()
	if !ok {
		return fmt.Errorf("line %d: %q is not a whole number of bytes", node.Line, node.Value)
	}
	*b = ByteSize(n)
	return nil
}
