package lease

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// op is one step on a Records: put (value set), delete (del), or neither
// (a plain check); after it, Get of key must give want (and found).
type op struct {
	put, del bool
	key      string
	value    string
	want     string
	found    bool
}

func TestRecords(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		ops      []op
		wantKeys []string
	}{
		{
			name: "nothing stored yet no ConfigMap",
			ops:  []op{{key: "plan/github:acme/shop#12"}, {del: true, key: "plan/github:acme/shop#12"}},
		},
		{
			name: "put get overwrite delete",
			ops: []op{
				{put: true, key: "plan/github:acme/shop#12", value: "sha256:aaa", want: "sha256:aaa", found: true},
				{put: true, key: "plan/github:acme/shop#12", value: "sha256:bbb", want: "sha256:bbb", found: true},
				{put: true, key: "delivery/1234-abcd", value: "", want: "", found: true},
				{del: true, key: "plan/github:acme/shop#12"},
				{del: true, key: "plan/github:acme/shop#12"},
				{key: "delivery/1234-abcd", want: "", found: true},
			},
			wantKeys: []string{"delivery/1234-abcd"},
		},
		{
			name: "awkward keys and values round-trip",
			ops: []op{
				{put: true, key: "äöü/日本語/🚀", value: "{\"json\": [1, 2]}\n", want: "{\"json\": [1, 2]}\n", found: true},
				{put: true, key: "..", value: "dots", want: "dots", found: true},
				{put: true, key: ".", value: "dot", want: "dot", found: true},
				{put: true, key: strings.Repeat("x/", 150), value: "long", want: "long", found: true},
				{put: true, key: "Same_Key", value: "1", want: "1", found: true},
				{put: true, key: "Same/Key", value: "2", want: "2", found: true},
				{key: "Same_Key", want: "1", found: true},
			},
			wantKeys: []string{".", "..", "Same/Key", "Same_Key", strings.Repeat("x/", 150), "äöü/日本語/🚀"},
		},
		{
			name: "over MaxEntries - the records written longest ago go",
			max:  3,
			ops: []op{
				{put: true, key: "a", value: "1", want: "1", found: true},
				{put: true, key: "b", value: "2", want: "2", found: true},
				{put: true, key: "c", value: "3", want: "3", found: true},
				{put: true, key: "a", value: "1'", want: "1'", found: true}, // a is now the newest
				{put: true, key: "d", value: "4", want: "4", found: true},   // b goes
				{key: "b"},
				{put: true, key: "e", value: "5", want: "5", found: true}, // c goes
				{key: "c"},
			},
			wantKeys: []string{"a", "d", "e"},
		},
		{
			name: "over the size - the records written longest ago go",
			ops: []op{
				{put: true, key: "first", value: strings.Repeat("1", 300<<10), want: strings.Repeat("1", 300<<10), found: true},
				{put: true, key: "second", value: strings.Repeat("2", 300<<10), want: strings.Repeat("2", 300<<10), found: true},
				{put: true, key: "third", value: strings.Repeat("3", 290<<10), want: strings.Repeat("3", 290<<10), found: true},
				{put: true, key: "fourth", value: strings.Repeat("4", 100<<10), want: strings.Repeat("4", 100<<10), found: true},
				{key: "first"},
				{key: "second", want: strings.Repeat("2", 300<<10), found: true},
			},
			wantKeys: []string{"fourth", "second", "third"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := env.Namespace(t)
			records := &Records{Client: env.Clientset, Namespace: ns, Name: "gitops-bot-records", MaxEntries: tt.max}
			for i, o := range tt.ops {
				switch {
				case o.put:
					if err := records.Put(t.Context(), o.key, o.value); err != nil {
						t.Fatalf("step %d: Put(%.40q): %v", i, o.key, err)
					}
				case o.del:
					if err := records.Delete(t.Context(), o.key); err != nil {
						t.Fatalf("step %d: Delete(%.40q): %v", i, o.key, err)
					}
				}
				got, found, err := records.Get(t.Context(), o.key)
				if err != nil {
					t.Fatalf("step %d: Get(%.40q): %v", i, o.key, err)
				}
				if got != o.want || found != o.found {
					t.Errorf("step %d: Get(%.40q) = %.40q, %v; want %.40q, %v", i, o.key, got, found, o.want, o.found)
				}
			}
			keys, err := records.Keys(t.Context())
			if err != nil {
				t.Fatalf("Keys: %v", err)
			}
			if diff := cmp.Diff(tt.wantKeys, keys); diff != "" {
				t.Errorf("Keys (-want +got):\n%s", diff)
			}
			all, err := records.All(t.Context())
			if err != nil {
				t.Fatalf("All: %v", err)
			}
			if len(all) != len(keys) {
				t.Errorf("All has %d records, Keys %d", len(all), len(keys))
			}
			for _, k := range keys {
				if v, _, _ := records.Get(t.Context(), k); all[k] != v {
					t.Errorf("All[%.40q] = %.40q, Get says %.40q", k, all[k], v)
				}
			}
			checkConfigMap(t, records)
		})
	}
}

// checkConfigMap checks the stored form: data keys ConfigMaps allow (the
// API server would refuse others, but say which), within the size bound.
func checkConfigMap(t *testing.T, records *Records) {
	t.Helper()
	cm, err := records.Client.CoreV1().ConfigMaps(records.Namespace).Get(t.Context(), records.Name, metav1.GetOptions{})
	if err != nil {
		return // nothing was ever put
	}
	size := 0
	for k, v := range cm.Data {
		if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
			t.Errorf("data key %q: %s", k, strings.Join(errs, "; "))
		}
		size += len(k) + len(v)
	}
	if size > MaxRecordBytes {
		t.Errorf("the ConfigMap holds %d bytes, more than %d", size, MaxRecordBytes)
	}
}

func TestRecordsConcurrentWritersLoseNothing(t *testing.T) {
	// Two replicas, ten writers each, all starting before the ConfigMap
	// exists: every Put must survive (conflicts and the race to create it
	// are retried, never overwritten).
	ns := env.Namespace(t)
	clients := []kubernetes.Interface{env.Clientset, newClient(t)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var want []string
	for i := range 20 {
		key := fmt.Sprintf("delivery/%02d", i)
		want = append(want, key)
		wg.Go(func() {
			records := &Records{Client: clients[i%2], Namespace: ns, Name: "gitops-bot-records"}
			<-start
			if err := records.Put(t.Context(), key, fmt.Sprint(i)); err != nil {
				t.Errorf("Put(%q): %v", key, err)
			}
		})
	}
	close(start)
	wg.Wait()
	records := &Records{Client: env.Clientset, Namespace: ns, Name: "gitops-bot-records"}
	keys, err := records.Keys(t.Context())
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("Keys after concurrent Puts (-want +got):\n%s", diff)
	}

	// And deletes racing puts of other keys lose nothing either.
	for i := range 20 {
		key := fmt.Sprintf("delivery/%02d", i)
		wg.Go(func() {
			records := &Records{Client: clients[i%2], Namespace: ns, Name: "gitops-bot-records"}
			var err error
			if i%2 == 0 {
				err = records.Delete(t.Context(), key)
			} else {
				err = records.Put(t.Context(), key+"/again", "x")
			}
			if err != nil {
				t.Errorf("%q: %v", key, err)
			}
		})
	}
	wg.Wait()
	keys, err = records.Keys(t.Context())
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	want = nil
	for i := 1; i < 20; i += 2 {
		want = append(want, fmt.Sprintf("delivery/%02d", i), fmt.Sprintf("delivery/%02d/again", i))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("Keys after concurrent Deletes and Puts (-want +got):\n%s", diff)
	}
}

func TestRecordsRefuse(t *testing.T) {
	ns := env.Namespace(t)
	// A ConfigMap with a key someone added by hand.
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "edited", Namespace: ns},
		Data:       map[string]string{"suspend": "true"},
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	records := &Records{Client: env.Clientset, Namespace: ns, Name: "records"}
	tests := []struct {
		name    string
		do      func() error
		wantErr string
	}{
		{
			name:    "a value larger than a ConfigMap holds",
			do:      func() error { return records.Put(t.Context(), "big", strings.Repeat("x", MaxRecordBytes)) },
			wantErr: `writing record "big": it takes`,
		},
		{
			name:    "a value that is not UTF-8",
			do:      func() error { return records.Put(t.Context(), "bin", "\xff\xfe") },
			wantErr: "encode binary values",
		},
		{
			name:    "an empty key",
			do:      func() error { return records.Put(t.Context(), "", "v") },
			wantErr: "empty key",
		},
		{
			name:    "no ConfigMap name",
			do:      func() error { return (&Records{Client: env.Clientset, Namespace: ns}).Put(t.Context(), "k", "v") },
			wantErr: "no Name",
		},
		{
			name: "a ConfigMap edited by hand",
			do: func() error {
				_, err := (&Records{Client: env.Clientset, Namespace: ns, Name: "edited"}).Keys(t.Context())
				return err
			},
			wantErr: "data key suspend is not a record",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestDataKeys(t *testing.T) {
	// Unit check of the encoding, without the API server: valid ConfigMap
	// keys, readable, distinct where the readable part is the same.
	tests := []struct {
		key, prefix string
	}{
		{"plan/github:acme/shop#12", "plan_github_acme_shop_12."},
		{"delivery/1234-abcd_EF", "delivery_1234-abcd_EF."},
		{"..", "__."},
		{"日本", "__."},
		{strings.Repeat("a", 300), strings.Repeat("a", sanitisedKeyBytes) + "."},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := dataKey(tt.key)
		if !strings.HasPrefix(got, tt.prefix) || len(got) != len(tt.prefix)+20 {
			t.Errorf("dataKey(%.40q) = %q, want %q and 20 hex digits", tt.key, got, tt.prefix)
		}
		if errs := validation.IsConfigMapKey(got); len(errs) > 0 {
			t.Errorf("dataKey(%.40q) = %q: %s", tt.key, got, strings.Join(errs, "; "))
		}
		if seen[got] {
			t.Errorf("dataKey(%.40q) = %q, given to another key too", tt.key, got)
		}
		seen[got] = true
	}
}
