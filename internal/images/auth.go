package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

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
	// Secrets are Secrets of type kubernetes.io/dockerconfigjson that the
	// caller read through the API, in order: this package takes only
	// their names (for errors) and .dockerconfigjson bytes.
	Secrets []PullSecret
	// Getenv reads GITOPS_REGISTRY_HOST, GITOPS_REGISTRY_USERNAME and
	// GITOPS_REGISTRY_PASSWORD; pass os.Getenv. Nil reads none.
	Getenv func(string) string
}

// PullSecret is a Secret of type kubernetes.io/dockerconfigjson.
type PullSecret struct {
	Name             string // namespace/name, for errors
	DockerConfigJSON []byte
}

// Keychain reads the credentials. Its errors name the source and the entry
// that is wrong, never a value. The keychain prints as the hosts it has
// credentials for, never the credentials.
func (c Credentials) Keychain() (authn.Keychain, error) {
	file, err := c.readFile()
	if err != nil {
		return nil, err
	}
	k, err := c.build(file)
	if err != nil {
		return nil, err
	}
	return k, nil
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
	for _, sec := range c.Secrets {
		if err := k.addDockerConfig(sec.DockerConfigJSON); err != nil {
			return nil, fmt.Errorf("Secret %s: .dockerconfigjson: %w; recreate it with kubectl create secret docker-registry", sec.Name, err)
		}
	}
	if c.Getenv != nil {
		if err := k.addEnv(c.Getenv); err != nil {
			return nil, err
		}
	}
	return k, nil
}

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
