package config

import (
	"strings"
	"testing"
)

func TestOrder(t *testing.T) {
	app := func(name string, deps ...string) App { return App{Name: name, DependsOn: deps} }
	tests := []struct {
		name    string
		apps    []App
		want    string
		wantErr string
	}{
		{"file order when free", []App{app("a"), app("b"), app("c")}, "a b c", ""},
		{"dependencies first", []App{app("web", "config", "infra"), app("config", "infra"), app("infra")}, "infra config web", ""},
		{"stable among ready", []App{app("x", "z"), app("y"), app("z")}, "y z x", ""},
		{"unknown dependency", []App{app("a", "nope")}, "", "depends on nope"},
		{"cycle", []App{app("a", "b"), app("b", "a"), app("c")}, "", "apps a, b depend on each other in a cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Order(tt.apps)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
			}
			if strings.Join(names, " ") != tt.want {
				t.Errorf("order %v, want %s", names, tt.want)
			}
		})
	}
	if dep := BlockedBy(app("web", "config", "infra"), map[string]bool{"infra": true}); dep != "infra" {
		t.Errorf("BlockedBy = %q", dep)
	}
}

func TestWaves(t *testing.T) {
	app := func(name string, deps ...string) *App { return &App{Name: name, DependsOn: deps} }
	for _, tc := range []struct {
		name string
		apps []*App
		want string
	}{
		{"none", nil, ""},
		{"independent apps in one wave", []*App{app("a"), app("b"), app("c")}, "a b c"},
		{"a chain", []*App{app("infra"), app("config", "infra"), app("web", "config")}, "infra | config | web"},
		{"as early as the dependencies allow", []*App{app("infra"), app("db"), app("config", "infra"), app("api", "db"), app("web", "config", "api"), app("docs")},
			"infra db docs | config api | web"},
		{"a dependency not among the apps", []*App{app("web", "config"), app("cache")}, "web cache"},
		{"a set that is no app", []*App{nil}, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var waves []string
			for _, w := range Waves(tc.apps) {
				var names []string
				for _, i := range w {
					if tc.apps[i] == nil {
						names = append(names, "-")
						continue
					}
					names = append(names, tc.apps[i].Name)
				}
				waves = append(waves, strings.Join(names, " "))
			}
			if got := strings.Join(waves, " | "); got != tc.want {
				t.Errorf("waves %q, want %q", got, tc.want)
			}
		})
	}
}
