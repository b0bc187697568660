package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// DefaultMaxEntries bounds the records one Records keeps.
const DefaultMaxEntries = 2000

// MaxRecordBytes bounds the data one Records keeps (keys and values as
// stored): the API server refuses a ConfigMap whose data passes 1 MiB, and
// the rest of the object needs room too.
const MaxRecordBytes = 900 << 10

// sanitisedKeyBytes bounds the readable part of a stored key.
const sanitisedKeyBytes = 100

// writeBackoff paces the retries of a write that lost a race; many writers
// at once need more than retry.DefaultRetry's five quick tries.
var writeBackoff = wait.Backoff{Steps: 12, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: time.Second}

// Records is a small persistent key/value map in one ConfigMap, for state
// that must survive a restart: the last approved plan of a pull request,
// the webhook deliveries already handled. It owns the whole ConfigMap (every
// data key is a record) and creates it on the first Put.
//
// It keeps at most MaxEntries records and MaxRecordBytes of data: a Put
// that would pass either removes the records written longest ago. It is a
// memory, not a database: a caller must cope with a record gone.
//
// A ConfigMap data key is the record's key with every character other than
// letters, digits, '-' and '_' made '_', cut to 100 bytes, then '.' and a
// hash of the whole key; the stored value is JSON holding the key, the value
// and when it was written ({"k":…,"v":…,"at":…}).
type Records struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// MaxEntries bounds the number of records (default DefaultMaxEntries).
	MaxEntries int
}

// record is the stored form of one record.
type record struct {
	Key   string    `json:"k"`
	Value string    `json:"v"`
	At    time.Time `json:"at"`
}

// Get returns key's value and whether there is one.
func (r *Records) Get(ctx context.Context, key string) (string, bool, error) {
	if err := r.check(key); err != nil {
		return "", false, err
	}
	cm, err := r.Client.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading record %q: %w", key, r.apiError("read", err))
	}
	rec, ok, err := r.lookup(cm, key)
	if err != nil || !ok {
		return "", false, err
	}
	return rec.Value, true, nil
}

// Put sets key's value, creating the ConfigMap if there is none, and
// removes the records written longest ago when there are more than
// MaxEntries or more than MaxRecordBytes of them.
func (r *Records) Put(ctx context.Context, key, value string) error {
	if err := r.check(key); err != nil {
		return err
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("writing record %q: the value is not valid UTF-8: encode binary values (base64) first", key)
	}
	dk := dataKey(key)
	raw, err := json.Marshal(record{Key: key, Value: value, At: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("writing record %q: %w", key, err)
	}
	if size := len(dk) + len(raw); size > MaxRecordBytes {
		return fmt.Errorf("writing record %q: it takes %d bytes stored, more than the %d a ConfigMap can hold: store less, or a digest of it", key, size, MaxRecordBytes)
	}
	err = r.update(ctx, true, func(cm *corev1.ConfigMap) (bool, error) {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[dk] = string(raw)
		return true, r.evict(cm, dk)
	})
	if err != nil {
		return fmt.Errorf("writing record %q: %w", key, err)
	}
	return nil
}

// Delete removes key's record; removing one that is not there is not an
// error.
func (r *Records) Delete(ctx context.Context, key string) error {
	if err := r.check(key); err != nil {
		return err
	}
	err := r.update(ctx, false, func(cm *corev1.ConfigMap) (bool, error) {
		if _, ok, err := r.lookup(cm, key); err != nil || !ok {
			return false, err
		}
		delete(cm.Data, dataKey(key))
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("deleting record %q: %w", key, err)
	}
	return nil
}

// Keys returns the keys of every record, sorted.
func (r *Records) Keys(ctx context.Context) ([]string, error) {
	all, err := r.All(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(all)), nil
}

// All returns every record's value by key, in one read of the ConfigMap.
func (r *Records) All(ctx context.Context) (map[string]string, error) {
	if err := r.checkTarget(); err != nil {
		return nil, err
	}
	cm, err := r.Client.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", r.apiError("read", err))
	}
	out := make(map[string]string, len(cm.Data))
	for dk, raw := range cm.Data {
		rec, err := r.decode(dk, raw)
		if err != nil {
			return nil, err
		}
		out[rec.Key] = rec.Value
	}
	return out, nil
}

// update reads the ConfigMap, lets change edit it and writes it back with
// the resourceVersion read, reading and editing again when someone else
// wrote first. When the ConfigMap does not exist it starts from an empty
// one if create is set, else it does nothing.
func (r *Records) update(ctx context.Context, create bool, change func(*corev1.ConfigMap) (bool, error)) error {
	configMaps := r.Client.CoreV1().ConfigMaps(r.Namespace)
	raced := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	var verb string
	err := retry.OnError(writeBackoff, raced, func() error {
		verb = "read"
		cm, err := configMaps.Get(ctx, r.Name, metav1.GetOptions{})
		exists := err == nil
		switch {
		case apierrors.IsNotFound(err) && create:
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		}
		changed, err := change(cm)
		if err != nil || !changed {
			return err
		}
		if !exists {
			verb = "create"
			_, err = configMaps.Create(ctx, cm, metav1.CreateOptions{})
			return err
		}
		verb = "update"
		_, err = configMaps.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	switch {
	case err == nil:
		return nil
	case raced(err):
		return fmt.Errorf("ConfigMap %s/%s kept changing under us (%w): too many writers at once; try again", r.Namespace, r.Name, err)
	case isAPIError(err):
		return r.apiError(verb, err)
	}
	return err
}

// evict removes the records written longest ago, never keep, until the
// ConfigMap holds at most MaxEntries records and MaxRecordBytes of data.
func (r *Records) evict(cm *corev1.ConfigMap, keep string) error {
	limit := r.MaxEntries
	if limit <= 0 {
		limit = DefaultMaxEntries
	}
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		size += len(k) + len(v)
	}
	if len(cm.Data) <= limit && size <= MaxRecordBytes {
		return nil
	}
	type aged struct {
		dataKey string
		at      time.Time
	}
	var old []aged
	for dk, raw := range cm.Data {
		if dk == keep {
			continue
		}
		rec, err := r.decode(dk, raw)
		if err != nil {
			return err
		}
		old = append(old, aged{dk, rec.At})
	}
	slices.SortFunc(old, func(a, b aged) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.dataKey, b.dataKey)
	})
	for _, o := range old {
		if len(cm.Data) <= limit && size <= MaxRecordBytes {
			break
		}
		size -= len(o.dataKey) + len(cm.Data[o.dataKey])
		delete(cm.Data, o.dataKey)
	}
	return nil
}

// lookup finds key's record in cm.
func (r *Records) lookup(cm *corev1.ConfigMap, key string) (record, bool, error) {
	dk := dataKey(key)
	raw, ok := cm.Data[dk]
	if !ok {
		return record{}, false, nil
	}
	rec, err := r.decode(dk, raw)
	if err != nil {
		return record{}, false, err
	}
	if rec.Key != key {
		return record{}, false, fmt.Errorf("ConfigMap %s/%s: data key %s holds the record of %q, not %q, whose stored keys are the same; use another ConfigMap for one of them", r.Namespace, r.Name, dk, rec.Key, key)
	}
	return rec, true, nil
}

func (r *Records) decode(dk, raw string) (record, error) {
	var rec record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Key == "" {
		if err == nil {
			err = errors.New(`no "k"`)
		}
		return record{}, fmt.Errorf("ConfigMap %s/%s: data key %s is not a record (%v): the ConfigMap belongs to the bot's records alone; remove that key", r.Namespace, r.Name, dk, err)
	}
	return rec, nil
}

// check refuses a misconfigured Records or a key that cannot be stored.
func (r *Records) check(key string) error {
	if err := r.checkTarget(); err != nil {
		return err
	}
	switch {
	case key == "":
		return errors.New("records: empty key: name what the record is for")
	case !utf8.ValidString(key):
		return fmt.Errorf("records: key %q is not valid UTF-8: the API server would not keep it as written", key)
	}
	return nil
}

// checkTarget refuses a misconfigured Records.
func (r *Records) checkTarget() error {
	if err := checkTarget("records", r.Client, r.Namespace); err != nil {
		return err
	}
	if r.Name == "" {
		return errors.New("records have no Name: name the ConfigMap that keeps them")
	}
	return nil
}

// apiError says which request on the ConfigMap failed and what to check.
func (r *Records) apiError(verb string, err error) error {
	return fmt.Errorf("could not %s ConfigMap %s/%s: %w; check the bot may %s ConfigMaps there", verb, r.Namespace, r.Name, err, verb)
}

func isAPIError(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status)
}

// dataKey is key as a ConfigMap data key: readable where key is, and
// unique by a hash of the whole key.
func dataKey(key string) string {
	var b strings.Builder
	for _, c := range key {
		if b.Len() >= sanitisedKeyBytes {
			break
		}
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + "." + hashHex(key, 20)
}
