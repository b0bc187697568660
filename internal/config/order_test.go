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
