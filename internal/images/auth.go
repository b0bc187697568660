package images

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// The environment variables Credentials.Getenv reads: the credentials of
// one registry, for a bot whose Deployment sets them from a Secret's keys.
// Username and password go together; the host is required with them.
const (
	EnvRegistryHost     = "GITOPS_REGISTRY_HOST"     // such as ghcr.io
	EnvRegistryUsername = "GITOPS_REGISTRY_USERNAME" // such as a robot account
	EnvRegistryPassword = "GITOPS_REGISTRY_PASSWORD" // its password or token
)

// Credentials says where the scanner finds registry credentials. A registry
// (or repository) takes them from the first source that has some for it, in
// the order of the fields; one with none is read anonymously. The zero value
// has no sources.
type Credentials struct {
	// DockerConfig is the path of a Docker config file (config.json, as
	// docker login writes it); its auths are read. Credential helpers
	// (credsStore, credHelpers) are not run, and their empty auths entries
	// are skipped: to use them, chain authn.DefaultKeychain after the
	// keychain with authn.NewMultiKeychain.
	DockerConfig string
	// DockerConfigJSON is the .dockerconfigjson of a Secret of type
	// kubernetes.io/dockerconfigjson, for a caller that read the Secret
	// through the API: this package takes only its bytes.
	DockerConfigJSON []byte
	// Getenv reads GITOPS_REGISTRY_HOST, GITOPS_REGISTRY_USERNAME and
	// GITOPS_REGISTRY_PASSWORD; pass os.Getenv. Nil reads none.
	Getenv func(string) string
}

// Keychain reads the credentials. Its errors name the source and the entry
// that is wrong, never a value. The keychain prints as the hosts it has
// credentials for, never the credentials.
func (c Credentials) Keychain() (authn.Keychain, error) {
	k, _, err := c.load()
	if err != nil {
		return nil, err
	}
	return k, nil
}

// load reads the docker config file and builds the keychain, returning
// the file's bytes (nil without one) with it.
func (c Credentials) load() (*keychain, []byte, error) {
	file, err := c.readFile()
	if err != nil {
		return nil, nil, err
	}
	k, err := c.build(file)
	return k, file, err
}

// readFile reads the docker config file, nil without one.
func (c Credentials) readFile() ([]byte, error) {
	if c.DockerConfig == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.DockerConfig)
	if err != nil {
		return nil, fmt.Errorf("reading the docker config: %w; point the scanner at an existing config.json or set none", err)
	}
	return b, nil
}

// build makes the keychain of the sources, with file as the docker config
// file's bytes.
func (c Credentials) build(file []byte) (*keychain, error) {
	k := &keychain{auths: map[string]authn.AuthConfig{}}
	if c.DockerConfig != "" {
		if err := k.addDockerConfig(file); err != nil {
			return nil, fmt.Errorf("docker config %s: %w", c.DockerConfig, err)
		}
	}
	if c.DockerConfigJSON != nil {
		if err := k.addDockerConfig(c.DockerConfigJSON); err != nil {
			return nil, fmt.Errorf("the Secret's .dockerconfigjson: %w; recreate it with kubectl create secret docker-registry", err)
		}
	}
	if c.Getenv != nil {
		if err := k.addEnv(c.Getenv); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ReloadingKeychain is Keychain for a long-running scanner: it reads the
// docker config file again whenever its bytes change, so credentials
// rotated in a mounted Secret (which the kubelet swaps in place) are used
// from the next scan, without a restart. The file is read at each Resolve
// (once per repository scanned, a few hundred bytes) and parsed only when
// it changed. A file that goes bad after the first read fails the scans
// with the same errors as Keychain, naming the file and the entry, never a
// value; the credentials read before are not used then.
func (c Credentials) ReloadingKeychain() (authn.Keychain, error) {
	k, file, err := c.load()
	switch {
	case err != nil:
		return nil, err
	case c.DockerConfig == "":
		return k, nil
	}
	return &reloading{creds: c, read: file, current: k}, nil
}

// reloading is a keychain whose docker config file is read again when it
// changes.
type reloading struct {
	creds   Credentials
	mu      sync.Mutex
	read    []byte    // the file's bytes current (or err) was built from
	current *keychain // nil when those bytes are bad
	err     error
}

// Resolve reads the file again and resolves res with the credentials it
// holds now.
func (r *reloading) Resolve(res authn.Resource) (authn.Authenticator, error) {
	kc, err := r.keychain()
	if err != nil {
		return nil, err
	}
	return kc.Resolve(res)
}

func (r *reloading) keychain() (*keychain, error) {
	file, err := r.creds.readFile()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !bytes.Equal(file, r.read) {
		r.read = file
		r.current, r.err = r.creds.build(file)
	}
	return r.current, r.err
}

// String names the hosts with credentials as last read, as keychain's
// String does.
func (r *reloading) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return "registry credentials (docker config " + r.creds.DockerConfig + " is not valid)"
	}
	return r.current.String()
}

// GoString is String, for %#v.
func (r *reloading) GoString() string { return r.String() }

// keychain holds credentials by registry host (index.docker.io for Docker
// Hub) or by repository prefix (ghcr.io/acme).
type keychain struct {
	auths map[string]authn.AuthConfig
}

// addDockerConfig adds the auths of a Docker config file, those of hosts
// the keychain has none for yet.
func (k *keychain) addDockerConfig(b []byte) error {
	var file struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return fmt.Errorf("not a docker config: %s", jsonProblem(err))
	}
	keys := make([]string, 0, len(file.Auths))
	for key := range file.Auths {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		var a authn.AuthConfig
		if err := json.Unmarshal(file.Auths[key], &a); err != nil {
			return fmt.Errorf("auths[%q]: %s", key, jsonProblem(err))
		}
		if a == (authn.AuthConfig{}) {
			continue // kept by a credential helper
		}
		k.add(key, a)
	}
	return nil
}

func (k *keychain) addEnv(getenv func(string) string) error {
	host, user, pass := getenv(EnvRegistryHost), getenv(EnvRegistryUsername), getenv(EnvRegistryPassword)
	switch {
	case host == "" && user == "" && pass == "":
		return nil
	case host == "":
		return fmt.Errorf("%s is set without %s; set %s to the registry host the credentials are for, such as ghcr.io",
			set(user, EnvRegistryUsername, pass, EnvRegistryPassword), EnvRegistryHost, EnvRegistryHost)
	case user == "" || pass == "":
		return fmt.Errorf("%s=%s needs both %s and %s; set the missing one", EnvRegistryHost, host, EnvRegistryUsername, EnvRegistryPassword)
	}
	if _, err := name.NewRegistry(normalizeKey(host)); err != nil {
		return fmt.Errorf("%s=%q is not a registry host; set it to one such as ghcr.io", EnvRegistryHost, host)
	}
	k.add(host, authn.AuthConfig{Username: user, Password: pass})
	return nil
}

// set names the variables that are set.
func set(user, userVar, pass, passVar string) string {
	var names []string
	if user != "" {
		names = append(names, userVar)
	}
	if pass != "" {
		names = append(names, passVar)
	}
	return strings.Join(names, " and ")
}

func (k *keychain) add(key string, a authn.AuthConfig) {
	key = normalizeKey(key)
	if _, ok := k.auths[key]; !ok {
		k.auths[key] = a
	}
}

// Resolve finds the credentials of the repository, then of each of its
// parents up to the registry host.
func (k *keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if len(k.auths) == 0 {
		return authn.Anonymous, nil
	}
	host := normalizeKey(r.RegistryStr())
	key := normalizeKey(r.String())
	for {
		if a, ok := k.auths[key]; ok {
			return authn.FromConfig(a), nil
		}
		i := strings.LastIndexByte(key, '/')
		if i < 0 || len(key) <= len(host) {
			break
		}
		key = key[:i]
	}
	if a, ok := k.auths[host]; ok {
		return authn.FromConfig(a), nil
	}
	return authn.Anonymous, nil
}

// String names the hosts with credentials, so that printing the keychain
// (or a struct holding it) shows no secret.
func (k *keychain) String() string {
	keys := make([]string, 0, len(k.auths))
	for key := range k.auths {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return "registry credentials for [" + strings.Join(keys, " ") + "]"
}

// GoString is String, for %#v.
func (k *keychain) GoString() string { return k.String() }

// normalizeKey reads a docker config key (https://index.docker.io/v1/,
// ghcr.io, http://registry:5000/v2/, ghcr.io/acme) as a host or a
// repository prefix, with Docker Hub's names as ggcr's.
func normalizeKey(key string) string {
	key = strings.TrimSpace(key)
	for _, scheme := range []string{"https://", "http://"} {
		if len(key) >= len(scheme) && strings.EqualFold(key[:len(scheme)], scheme) {
			key = key[len(scheme):]
		}
	}
	key = strings.TrimRight(key, "/")
	host, path, _ := strings.Cut(key, "/")
	if path == "v1" || path == "v2" {
		path = ""
	}
	host = strings.ToLower(host)
	switch host {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		host = name.DefaultRegistry
	}
	if path == "" {
		return host
	}
	return host + "/" + path
}

// jsonProblem says what is wrong with a document without quoting it.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("not JSON (syntax error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("a JSON %s where an object belongs", typ.Value)
		}
		return fmt.Sprintf("field %s is a JSON %s, not a %s", typ.Field, typ.Value, typ.Type)
	}
	return "its auth field is not base64 of username:password"
}
