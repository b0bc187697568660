package approvals_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

// ownersOf returns the owners of path in each owning section, as
// "section:N=owner owner".
func ownersOf(c *approvals.Codeowners, path string) []string {
	var out []string
	for _, o := range c.Owners(path) {
		s := o.Section
		if o.Optional {
			s = "^" + s
		}
		if o.Approvals != 1 {
			s += "[" + string(rune('0'+o.Approvals)) + "]"
		}
		out = append(out, s+"="+strings.Join(o.Owners, " "))
	}
	return out
}

func TestCodeownersGitHub(t *testing.T) {
	// The examples of GitHub's documentation, and the corner cases between them.
	c, err := approvals.ParseCodeowners(`# comment
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/literal/[ab].md @brackets
path\ with\ spaces/ @spaces
\#hash.md @hash
`, approvals.GitHub)
	if err != nil {
		t.Fatalf("ParseCodeowners: %v", err)
	}
	tests := map[string][]string{
		"README.md":                           {"=@global-owner1 @global-owner2"},
		"src/app.js":                          {"=@js-owner"},
		"main.go":                             {"=docs@example.com"},
		"notes.txt":                           {"=@octo-org/octocats"},
		"build/logs/today.log":                {"=@octocat"}, // **/logs comes later than /build/logs/
		"docs/getting-started.md":             {"=@doctocat"},
		"docs/build-app/troubleshooting.md":   {"=@doctocat"},
		"x/docs/a.md":                         {"=@global-owner1 @global-owner2"}, // docs/* is anchored on GitHub
		"deeply/nested/logs/a.txt":            {"=@octocat"},
		"scripts/deploy.sh":                   {"=@doctocat @octocat"},
		"apps/web/main.js":                    {"=@octocat"},
		"apps/github/main.go":                 nil, // un-owned by a rule without owners
		"apps/github":                         nil,
		"apps/githubber/main.go":              {"=@octocat"},
		"nested/apps/x.yaml":                  {"=@octocat"}, // apps/ matches at any depth
		"literal/[ab].md":                     {"=@brackets"},
		"literal/a.md":                        {"=@global-owner1 @global-owner2"}, // GitHub has no character classes
		"path with spaces/a":                  {"=@spaces"},
		"#hash.md":                            {"=@hash"},
		"/README.md":                          {"=@global-owner1 @global-owner2"},
		"./src/app.js":                        {"=@js-owner"},
		"":                                    nil,
		"docs/sub/dir/page.md":                {"=@doctocat"},
		"logs":                                {"=@octocat"},
		"build/logs/nested/deeper/file.bin":   {"=@octocat"},
		"not-build/logs-archive/file.bin":     {"=@global-owner1 @global-owner2"},
		"scripts":                             {"=@global-owner1 @global-owner2"}, // /scripts/ matches only the folder's contents
		"apps/github/sub/dir/really/deep.yml": nil,
	}
	for path, want := range tests {
		if got := ownersOf(c, path); !slices.Equal(got, want) {
			t.Errorf("Owners(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestCodeownersGitLab(t *testing.T) {
	c, err := approvals.ParseCodeowners(`* @default-owner
README.md @docs-team
!CHANGELOG.md

[Documentation] @docs-team
docs/
/ee/docs/ @ee-docs
*.md

[Database][2] @dba-1 @dba-2 @dba-3
db/
db/README.md @ruby-owner

^[Frontend] @fe
*.js

[documentation]
/internal/docs/ @internal-docs

[Roles]
/deploy/ @@maintainer @group/sub/subgroup
!/deploy/generated/

[Classes]
/lib/[a-c]*.rb @abc
`, approvals.GitLab)
	if err != nil {
		t.Fatalf("ParseCodeowners: %v", err)
	}
	if n := len(c.Sections); n != 6 {
		t.Errorf("%d sections, want 6 (the default one, and documentation joined)", n)
	}
	tests := map[string][]string{
		"src/main.go":             {"=@default-owner"},
		"README.md":               {"=@docs-team", "Documentation=@docs-team"},
		"nested/README.md":        {"=@docs-team", "Documentation=@docs-team"}, // GitLab matches unanchored patterns at any depth
		"CHANGELOG.md":            {"Documentation=@docs-team"},                // excluded from the default section only
		"docs/a.txt":              {"=@default-owner", "Documentation=@docs-team"},
		"x/docs/a.txt":            {"=@default-owner", "Documentation=@docs-team"},
		"ee/docs/a.txt":           {"=@default-owner", "Documentation=@ee-docs"},
		"ee/docs/a.md":            {"=@default-owner", "Documentation=@docs-team"}, // *.md comes later
		"db/schema.sql":           {"=@default-owner", "Database[2]=@dba-1 @dba-2 @dba-3"},
		"db/README.md":            {"=@docs-team", "Documentation=@docs-team", "Database[2]=@ruby-owner"},
		"web/app.js":              {"=@default-owner", "^Frontend=@fe"},
		"internal/docs/x.y":       {"=@default-owner", "Documentation=@internal-docs"},
		"deploy/app.yaml":         {"=@default-owner", "Roles=@@maintainer @group/sub/subgroup"},
		"deploy/generated/a.yaml": {"=@default-owner"},
		"lib/b_thing.rb":          {"=@default-owner", "Classes=@abc"},
		"lib/d_thing.rb":          {"=@default-owner"},
	}
	for path, want := range tests {
		if got := ownersOf(c, path); !slices.Equal(got, want) {
			t.Errorf("Owners(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestCodeownersErrors(t *testing.T) {
	tests := []struct {
		name   string
		syntax approvals.Syntax
		text   string
		want   []string
		owners map[string][]string // what the lines that could be read still decide
	}{{
		name:   "GitHub: sections, negation and bad owners",
		syntax: approvals.GitHub,
		text:   "* @all\n[Docs] @docs\n!*.md\n*.md @a/b/c\n*.go nobody\n/ @root\n*.js @js\n",
		want: []string{
			"line 2: sections ([Name]) are GitLab syntax",
			"line 3: negation (!pattern) does not work in GitHub's CODEOWNERS",
			`line 4: owner "@a/b/c" has more than one /`,
			`line 5: owner "nobody" is not an owner; write @user, @org/team or an email address`,
			"line 6: pattern matches no file",
		},
		owners: map[string][]string{"a.md": {"=@all"}, "a.go": {"=@all"}, "a.js": {"=@js"}},
	}, {
		name:   "GitLab: broken headings keep their rules apart",
		syntax: approvals.GitLab,
		text:   "* @all\n[Docs\n*.md @docs\n[]\n[Ops][x]\n[DB][0]\n[Web]@web\n!*.go @someone\n",
		want: []string{
			"line 2: section heading has no closing ]",
			"line 4: section heading has no name",
			`line 5: approval count "x" is not a number from 1 to 1000`,
			`line 6: approval count "0"`,
			"line 7: section heading has text right after ]",
			"line 8: an exclusion (!pattern) takes no owners",
		},
		owners: map[string][]string{"a.md": {"=@all", "[Docs=@docs"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := approvals.ParseCodeowners(tt.text, tt.syntax)
			if err == nil {
				t.Fatal("no error")
			}
			var le *approvals.LineError
			if !errors.As(err, &le) {
				t.Errorf("%v is not a *LineError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
			for path, want := range tt.owners {
				if got := ownersOf(c, path); !slices.Equal(got, want) {
					t.Errorf("Owners(%q) = %q, want %q", path, got, want)
				}
			}
		})
	}
}

func TestCodeownersManyErrors(t *testing.T) {
	_, err := approvals.ParseCodeowners(strings.Repeat("!x\n", 500), approvals.GitHub)
	if err == nil || !strings.Contains(err.Error(), "and 450 more lines that could not be read") || strings.Count(err.Error(), "\n") != 50 {
		t.Errorf("err = %v", err)
	}
}
