package config

import (
	"fmt"
	"strings"
)

// Order sorts apps so that each comes after the apps it depends on; apps
// free to go in any order keep their order in gitops.yaml. Dependencies on
// apps not in the list, and cycles, are errors (config's Validate reports
// them with line numbers first).
func Order(apps []App) ([]App, error) {
	index := make(map[string]int, len(apps))
	for i, a := range apps {
		index[a.Name] = i
	}
	waiting := make([]int, len(apps)) // dependencies not yet placed
	dependants := make([][]int, len(apps))
	for i, a := range apps {
		for _, dep := range a.DependsOn {
			j, ok := index[dep]
			if !ok {
				return nil, fmt.Errorf("app %s depends on %s, which is not an app of the repository", a.Name, dep)
			}
			waiting[i]++
			dependants[j] = append(dependants[j], i)
		}
	}
	placed := make([]bool, len(apps))
	out := make([]App, 0, len(apps))
	for len(out) < len(apps) {
		next := -1
		for i := range apps {
			if !placed[i] && waiting[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var stuck []string
			for i, a := range apps {
				if !placed[i] {
					stuck = append(stuck, a.Name)
				}
			}
			return nil, fmt.Errorf("apps %s depend on each other in a cycle; remove one of their dependsOn entries", strings.Join(stuck, ", "))
		}
		placed[next] = true
		out = append(out, apps[next])
		for _, d := range dependants[next] {
			waiting[d]--
		}
	}
	return out, nil
}

// BlockedBy returns the first of app's dependencies in failed, or "".
// A dependant of a failed app is not applied.
func BlockedBy(app App, failed map[string]bool) string {
	for _, dep := range app.DependsOn {
		if failed[dep] {
			return dep
		}
	}
	return ""
}

// Waves groups apps, in Order's order, into waves: each app comes in a
// later wave than every app it depends on among apps, and as early as
// that allows, so the apps of one wave depend on none of each other and
// may be applied at once. It returns indexes into apps, each wave in the
// apps' order. Dependencies on apps not among apps (already in sync, say)
// do not hold an app back; a nil entry (a set that is no app) depends on
// nothing.
func Waves(apps []*App) [][]int {
	index := make(map[string]int, len(apps))
	for i, a := range apps {
		if a != nil {
			index[a.Name] = i
		}
	}
	wave := make([]int, len(apps))
	var out [][]int
	for i, a := range apps {
		w := 0
		for _, dep := range a.deps() {
			if j, ok := index[dep]; ok && j < i {
				w = max(w, wave[j]+1)
			}
		}
		wave[i] = w
		for len(out) <= w {
			out = append(out, nil)
		}
		out[w] = append(out[w], i)
	}
	return out
}

// deps is the app's dependsOn; none for nil.
func (a *App) deps() []string {
	if a == nil {
		return nil
	}
	return a.DependsOn
}
