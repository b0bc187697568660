package cluster

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// fetchTask reads the live state of objects of one kind in one namespace:
// all of them with one LIST, or the named ones with a GET each.
type fetchTask struct {
	mapping   *meta.RESTMapping
	gvk       schema.GroupVersionKind
	namespace string
	list      bool
	keys      []string // the keys the task answers for
	name      string   // for a GET
}

// fetchTasks plans the reads of the live state of desired[idx…].
func (p *plan) fetchTasks(idx []int) []fetchTask {
	type bucket struct {
		gvk schema.GroupVersionKind
		ns  string
	}
	groups := map[bucket][]int{}
	var order []bucket
	for _, i := range idx {
		obj := p.desired[i]
		km := p.kinds[obj.GroupVersionKind()]
		if km.err != nil {
			continue
		}
		b := bucket{obj.GroupVersionKind(), obj.GetNamespace()}
		if _, ok := groups[b]; !ok {
			order = append(order, b)
		}
		groups[b] = append(groups[b], i)
	}
	var tasks []fetchTask
	for _, b := range order {
		m := p.kinds[b.gvk].mapping
		members := groups[b]
		if len(members) >= liveListThreshold {
			t := fetchTask{mapping: m, gvk: b.gvk, namespace: b.ns, list: true}
			for _, i := range members {
				t.keys = append(t.keys, diff.RefOf(p.desired[i]).Key())
			}
			tasks = append(tasks, t)
			continue
		}
		for _, i := range members {
			obj := p.desired[i]
			tasks = append(tasks, fetchTask{mapping: m, gvk: b.gvk, namespace: b.ns, name: obj.GetName(), keys: []string{diff.RefOf(obj).Key()}})
		}
	}
	return tasks
}

// fetch runs one fetchTask and records what it found.
func (p *plan) fetch(ctx context.Context, t fetchTask) {
	ri := p.c.resourceFor(t.mapping, t.namespace)
	found := map[string]*unstructured.Unstructured{}
	var err error
	if t.list {
		var list *unstructured.UnstructuredList
		list, err = ri.List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				item := &list.Items[i]
				if item.GetAPIVersion() == "" {
					item.SetGroupVersionKind(t.gvk)
				}
				found[diff.RefOf(item).Key()] = item
			}
		}
	} else {
		var obj *unstructured.Unstructured
		obj, err = ri.Get(ctx, t.name, metav1.GetOptions{})
		switch {
		case err == nil:
			found[diff.RefOf(obj).Key()] = obj
		case apierrors.IsNotFound(err):
			err = nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range t.keys {
		p.fetched[k] = err
		if obj, ok := found[k]; ok && err == nil {
			p.live[k] = obj
		}
	}
}

// liveOf returns the live object for key as read from the inventory or by
// fetch; nil when it does not exist.
func (p *plan) liveOf(key string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.fetched[key]; ok {
		return p.live[key], err
	}
	if m, ok := p.members[key]; ok && m.GetAPIVersion() == obj.GetAPIVersion() {
		return m, nil
	}
	return nil, fmt.Errorf("live object of %s was not read", key)
}
