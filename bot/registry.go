package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
)

// registryRefresh is how long the registry credentials read for one
// repository's check are used for the next ones before being read again.
const registryRefresh = 10 * time.Second

// registryKeychain is the image scanner's keychain. It is built again
// before a check (at most every registryRefresh) from the docker config
// file, the pull Secrets and the environment, so credentials rotated in a
// Secret are used from the next check without a restart. When they cannot
// be read, no credentials are used: the check fails, naming the source.
type registryKeychain struct {
	creds images.Credentials // Secrets are filled in by each refresh
	// secrets names the pull Secrets; read reads one's .dockerconfigjson.
	secrets []string
	read    func(ctx context.Context, name string) (images.PullSecret, error)

	mu      sync.Mutex
	at      time.Time
	current authn.Keychain
}

// refresh reads the credentials again unless they were read within
// registryRefresh of now.
func (k *registryKeychain) refresh(ctx context.Context, now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current != nil && !now.Before(k.at) && now.Sub(k.at) < registryRefresh {
		return nil
	}
	k.current = nil
	c := k.creds
	c.Secrets = nil
	for _, name := range k.secrets {
		s, err := k.read(ctx, name)
		if err != nil {
			return err
		}
		c.Secrets = append(c.Secrets, s)
	}
	kc, err := c.Keychain()
	if err != nil {
		return err
	}
	k.current, k.at = kc, now
	return nil
}

// Resolve resolves r with the credentials of the last refresh.
func (k *registryKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	kc := k.current
	k.mu.Unlock()
	if kc == nil {
		return nil, errors.New("the registry credentials could not be read; see the error of the image check")
	}
	return kc.Resolve(r)
}

// String names the hosts with credentials, never the credentials.
func (k *registryKeychain) String() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current == nil {
		return "registry credentials (not read)"
	}
	return fmt.Sprint(k.current)
}

// GoString is String, for %#v.
func (k *registryKeychain) GoString() string { return k.String() }

// pullSecrets reads pull Secrets (type kubernetes.io/dockerconfigjson) of
// the bot's namespace.
type pullSecrets struct {
	client    kubernetes.Interface
	namespace string
}

// read reads Secret name. Its errors name the Secret and what to do,
// never a value.
func (p pullSecrets) read(ctx context.Context, name string) (images.PullSecret, error) {
	full := p.namespace + "/" + name
	s, err := p.client.CoreV1().Secrets(p.namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return images.PullSecret{}, fmt.Errorf("images.pullSecrets: Secret %s not found; create it with kubectl create secret docker-registry %s -n %s, or remove it from images.pullSecrets", full, name, p.namespace)
	case apierrors.IsForbidden(err):
		return images.PullSecret{}, fmt.Errorf("images.pullSecrets: the bot may not read Secret %s; grant get on it in the bot's state Role (resourceNames)", full)
	case err != nil:
		return images.PullSecret{}, fmt.Errorf("images.pullSecrets: read Secret %s: %w", full, err)
	case s.Type != corev1.SecretTypeDockerConfigJson:
		return images.PullSecret{}, fmt.Errorf("images.pullSecrets: Secret %s is of type %s, not %s; recreate it with kubectl create secret docker-registry", full, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	b, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok {
		return images.PullSecret{}, fmt.Errorf("images.pullSecrets: Secret %s has no %s key; recreate it with kubectl create secret docker-registry", full, corev1.DockerConfigJsonKey)
	}
	return images.PullSecret{Name: full, DockerConfigJSON: b}, nil
}
