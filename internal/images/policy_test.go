package images_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// policy is a valid image policy, semver >=1.0.0 with the default excludes,
// changed by each of mods.
func policy(mods ...func(*config.ImagePolicy)) config.ImagePolicy {
	p := config.ImagePolicy{
		Name:   "app",
		Image:  "ghcr.io/acme/app",
		Policy: config.TagPolicy{Semver: &config.SemverPolicy{Range: ">=1.0.0"}},
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func semverRange(r string) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) { p.Policy = config.TagPolicy{Semver: &config.SemverPolicy{Range: r}} }
}

func alphabetical(order string) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) {
		p.Policy = config.TagPolicy{Alphabetical: &config.OrderPolicy{Order: order}}
	}
}

func numerical(order string) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) { p.Policy = config.TagPolicy{Numerical: &config.OrderPolicy{Order: order}} }
}

func filter(pattern, extract string) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) { p.FilterTags = &config.FilterTags{Pattern: pattern, Extract: extract} }
}

// exclude sets the exclude list; with no patterns, to an empty list.
func exclude(patterns ...string) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) { p.Exclude = append([]string{}, patterns...) }
}

func minimumAge(d time.Duration) func(*config.ImagePolicy) {
	return func(p *config.ImagePolicy) { p.MinimumAge = config.Duration{Duration: d} }
}

// tags makes tags created long ago; "name@-2h" is created 2h before now,
// "name@?" at an unknown time.
func tags(specs ...string) []images.Tag {
	out := make([]images.Tag, 0, len(specs))
	for _, s := range specs {
		name, age, ok := strings.Cut(s, "@")
		t := images.Tag{Name: name, Created: now.Add(-365 * 24 * time.Hour), Digest: "sha256:" + name}
		switch {
		case !ok:
		case age == "?":
			t.Created = time.Time{}
		default:
			d, err := time.ParseDuration(age)
			if err != nil {
				panic(err)
			}
			t.Created = now.Add(d)
		}
		out = append(out, t)
	}
	return out
}

func TestLatest(t *testing.T) {
	tests := []struct {
		name   string
		policy config.ImagePolicy
		tags   []images.Tag
		want   string // the chosen tag
		why    string
		held   string
		err    string // the whole error, when no tag qualifies
		young  bool   // the error wraps ErrTooYoung
	}{{
		name:   "semver: highest in range",
		policy: policy(semverRange(">=1.0.0 <2.0.0")),
		tags:   tags("0.9.0", "1.0.0", "1.2.0", "1.10.0", "2.0.0", "1.9.0"),
		want:   "1.10.0",
		why:    "highest of 4 tags in >=1.0.0 <2.0.0",
	}, {
		name:   "semver: a leading v, and tags that are not versions ignored",
		policy: policy(),
		tags:   tags("latest", "v1.2.3", "main-0a1b2c3", "1.2.2", "sha256-0a1b.sig"),
		want:   "v1.2.3",
		why:    "highest of 2 tags in >=1.0.0",
	}, {
		name:   "semver: lenient versions",
		policy: policy(semverRange("~1.2")),
		tags:   tags("1.2", "1.1.9", "1.3"),
		want:   "1.2",
		why:    "highest of 1 tag in ~1.2",
	}, {
		name:   "semver: equal versions prefer the name that sorts last",
		policy: policy(),
		tags:   tags("1.2.3", "v1.2.3", "1.2.3+build.1"),
		want:   "v1.2.3",
		why:    "highest of 3 tags in >=1.0.0",
	}, {
		name:   "semver: a range without a pre-release skips pre-releases",
		policy: policy(),
		tags:   tags("1.0.0", "1.1.0-rc.1", "1.1.0-0"),
		want:   "1.0.0",
		why:    "highest of 1 tag in >=1.0.0",
	}, {
		name:   "semver: a range that names a pre-release takes them",
		policy: policy(semverRange(">=1.1.0-0")),
		tags:   tags("1.0.0", "1.1.0-rc.1", "1.1.0-beta.2"),
		want:   "1.1.0-rc.1",
		why:    "highest of 2 tags in >=1.1.0-0",
	}, {
		name:   "semver: a release ranks above its pre-releases",
		policy: policy(semverRange(">=1.1.0-0")),
		tags:   tags("1.1.0-rc.1", "1.1.0"),
		want:   "1.1.0",
		why:    "highest of 2 tags in >=1.1.0-0",
	}, {
		name:   "semver: no version in range",
		policy: policy(semverRange(">=2.0.0")),
		tags:   tags("1.9.3", "1.0.0", "sha256-0a.sig", "sha256-0b.sig", "sha256-0a.att", "latest"),
		err:    `no tag of ghcr.io/acme/app matches >=2.0.0 (6 tags, 2 excluded by ^.*\.sig$, 1 excluded by ^.*\.att$, 1 not a version, newest 1.9.3)`,
	}, {
		name:   "semver: only a pre-release in range",
		policy: policy(),
		tags:   tags("0.9.0", "1.0.0-rc.1"),
		err:    "no tag of ghcr.io/acme/app matches >=1.0.0 (2 tags, newest 1.0.0-rc.1, a pre-release, which a range takes only when it names one (such as >=1.0.0-0))",
	}, {
		name:   "no tags",
		policy: policy(),
		tags:   nil,
		err:    "no tag of ghcr.io/acme/app matches >=1.0.0 (the repository has no tags)",
	}, {
		name:   "excludes: cosign signatures, attestations and SBOMs by default",
		policy: policy(alphabetical("")),
		tags:   tags("main-1", "sha256-ff.sig", "sha256-ff.att", "sha256-ff.sbom"),
		want:   "main-1",
		why:    "last of 1 tag in alphabetical order",
	}, {
		name:   "excludes: an empty list excludes nothing",
		policy: policy(alphabetical(""), exclude()),
		tags:   tags("main-1", "sha256-ff.sig", "sha256-ff.att", "sha256-ff.sbom"),
		want:   "sha256-ff.sig",
		why:    "last of 4 tags in alphabetical order",
	}, {
		name:   "excludes: a list of its own replaces the default",
		policy: policy(alphabetical(""), exclude(`-debug$`)),
		tags:   tags("b-debug", "a", "sha256-ff.sig"),
		want:   "sha256-ff.sig",
		why:    "last of 2 tags in alphabetical order",
	}, {
		name:   "excludes: everything excluded",
		policy: policy(alphabetical(""), exclude(`^.*$`)),
		tags:   tags("a", "b"),
		err:    "no tag of ghcr.io/acme/app qualifies for alphabetical order (2 tags, 2 excluded by ^.*$)",
	}, {
		name:   "alphabetical asc picks the last",
		policy: policy(alphabetical(config.OrderAsc)),
		tags:   tags("b", "c", "a", "B"),
		want:   "c",
		why:    "last of 4 tags in alphabetical order",
	}, {
		name:   "alphabetical desc picks the first",
		policy: policy(alphabetical(config.OrderDesc)),
		tags:   tags("b", "c", "a", "B"),
		want:   "B",
		why:    "first of 4 tags in alphabetical order",
	}, {
		name:   "numerical asc picks the highest, ignoring what is not a number",
		policy: policy(numerical("")),
		tags:   tags("1", "10", "9", "latest", "2.5", "NaN", "Inf", "-5", "v11"),
		want:   "10",
		why:    "last of 5 tags in numerical order",
	}, {
		name:   "numerical desc picks the lowest",
		policy: policy(numerical(config.OrderDesc)),
		tags:   tags("1", "10", "9", "latest", "2.5", "-5"),
		want:   "-5",
		why:    "first of 5 tags in numerical order",
	}, {
		name:   "numerical: equal numbers prefer the name that sorts last",
		policy: policy(numerical("")),
		tags:   tags("2.0", "2", "1"),
		want:   "2.0",
		why:    "last of 3 tags in numerical order",
	}, {
		name:   "numerical: no number",
		policy: policy(numerical("")),
		tags:   tags("latest", "main"),
		err:    "no tag of ghcr.io/acme/app qualifies for numerical order (2 tags, 2 not a number)",
	}, {
		name:   "filter and extract: numerical timestamps",
		policy: policy(numerical(""), filter(`^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, "$ts")),
		tags:   tags("main-abc123-1700000000", "main-def456-1700000300", "main-0aa-1699999999", "pr-7-1800000000", "latest", "main-fff-99999999999"),
		want:   "main-fff-99999999999",
		why:    "last of 4 tags in numerical order, comparing $ts",
	}, {
		name:   "filter and extract: equal timestamps prefer the name that sorts last",
		policy: policy(numerical(""), filter(`^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, "$ts")),
		tags:   tags("main-bbb-1700000000", "main-aaa-1700000000", "main-ccc-1600000000"),
		want:   "main-bbb-1700000000",
		why:    "last of 3 tags in numerical order, comparing $ts",
	}, {
		name:   "filter and extract: alphabetical timestamps",
		policy: policy(alphabetical(""), filter(`^(?P<branch>main|dev)-(?P<ts>[0-9]{8}T[0-9]{6})-[0-9a-f]+$`, "${ts}")),
		tags:   tags("main-20250101T120000-ff", "dev-20250301T000000-aa", "main-20250201T000000-00", "zzz"),
		want:   "dev-20250301T000000-aa",
		why:    "last of 3 tags in alphabetical order, comparing ${ts}",
	}, {
		name:   "filter and extract: semver built from groups",
		policy: policy(semverRange("<2.0.0"), filter(`^release-(?P<major>[0-9]+)_(?P<minor>[0-9]+)$`, "${major}.${minor}.0")),
		tags:   tags("release-1_9", "release-1_10", "release-2_0", "1.11.0"),
		want:   "release-1_10",
		why:    "highest of 2 tags in <2.0.0, comparing ${major}.${minor}.0",
	}, {
		name:   "filter without extract compares the whole tag",
		policy: policy(filter(`^v`, "")),
		tags:   tags("v1.0.0", "1.5.0", "v1.1.0"),
		want:   "v1.1.0",
		why:    "highest of 2 tags in >=1.0.0",
	}, {
		name:   "filter matches nothing",
		policy: policy(numerical(""), filter(`^main-(?P<ts>[0-9]+)$`, "$ts")),
		tags:   tags("1", "dev-2", "sha256-a.sig"),
		err:    "no tag of ghcr.io/acme/app qualifies for numerical order (3 tags, 1 excluded by ^.*\\.sig$, 2 not matching ^main-(?P<ts>[0-9]+)$)",
	}, {
		name:   "filter and extract: extracted values that are not numbers",
		policy: policy(numerical(""), filter(`^main-(?P<ts>[a-z0-9]+)$`, "$ts")),
		tags:   tags("main-abc", "main-x1"),
		err:    "no tag of ghcr.io/acme/app qualifies for numerical order (2 tags, 2 not a number in $ts)",
	}, {
		name:   "minimumAge holds the newest",
		policy: policy(minimumAge(24 * time.Hour)),
		tags:   tags("1.3.0@-2h", "1.2.0@-48h", "1.1.0"),
		want:   "1.2.0",
		why:    "highest of 2 of 3 tags in >=1.0.0 (1 held by minimumAge 24h)",
		held:   "1.3.0 is 2h old, younger than minimumAge 24h",
	}, {
		name:   "minimumAge: an age never rounds up to the minimum",
		policy: policy(minimumAge(24 * time.Hour)),
		tags:   tags("1.3.0@-23h59m59s", "1.2.0@-24h"),
		want:   "1.2.0",
		why:    "highest of 1 of 2 tags in >=1.0.0 (1 held by minimumAge 24h)",
		held:   "1.3.0 is 23h59m old, younger than minimumAge 24h",
	}, {
		name:   "minimumAge: an unknown age is too young",
		policy: policy(minimumAge(90 * time.Minute)),
		tags:   tags("1.3.0@?", "1.2.0"),
		want:   "1.2.0",
		why:    "highest of 1 of 2 tags in >=1.0.0 (1 held by minimumAge 1h30m)",
		held:   "1.3.0 has no known creation time, so minimumAge 1h30m holds it",
	}, {
		name:   "minimumAge: created in the future",
		policy: policy(minimumAge(time.Hour)),
		tags:   tags("1.3.0@5m", "1.2.0"),
		want:   "1.2.0",
		why:    "highest of 1 of 2 tags in >=1.0.0 (1 held by minimumAge 1h)",
		held:   "1.3.0 was created 5m after now, so minimumAge 1h holds it",
	}, {
		name:   "minimumAge: held tags below the choice are not mentioned",
		policy: policy(minimumAge(24 * time.Hour)),
		tags:   tags("1.3.0@-48h", "1.2.0@-1h", "1.2.1@?"),
		want:   "1.3.0",
		why:    "highest of 1 of 3 tags in >=1.0.0 (2 held by minimumAge 24h)",
	}, {
		name:   "minimumAge: old enough everywhere",
		policy: policy(minimumAge(24 * time.Hour)),
		tags:   tags("1.3.0@-25h", "1.2.0"),
		want:   "1.3.0",
		why:    "highest of 2 tags in >=1.0.0",
	}, {
		name:   "minimumAge: nothing old enough yet",
		policy: policy(minimumAge(24 * time.Hour)),
		tags:   tags("1.3.0@-2h", "1.2.0@-3h", "0.9.0"),
		err:    "no tag of ghcr.io/acme/app is old enough yet: 1.3.0 is 2h old, younger than minimumAge 24h (2 tags in >=1.0.0, none at least 24h old)",
		young:  true,
	}, {
		name:   "minimumAge with alphabetical desc and extract",
		policy: policy(alphabetical(config.OrderDesc), filter(`^build-(?P<n>[a-z]+)$`, "$n"), minimumAge(time.Hour)),
		tags:   tags("build-a@-30m", "build-b@-2h", "build-c", "other"),
		want:   "build-b",
		why:    "first of 2 of 3 tags in alphabetical order (1 held by minimumAge 1h), comparing $n",
		held:   "build-a is 30m old, younger than minimumAge 1h",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := images.Compile(tt.policy)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			// The choice never depends on the order of the input.
			for _, in := range [][]images.Tag{tt.tags, reversed(tt.tags)} {
				got, err := p.Latest(in, now)
				if tt.err != "" {
					if err == nil || err.Error() != tt.err {
						t.Fatalf("Latest = %+v, %v\nwant error %s", got, err, tt.err)
					}
					if !errors.Is(err, images.ErrNoTag) || errors.Is(err, images.ErrTooYoung) != tt.young {
						t.Errorf("errors.Is(ErrNoTag, ErrTooYoung) = %v, %v; want true, %v",
							errors.Is(err, images.ErrNoTag), errors.Is(err, images.ErrTooYoung), tt.young)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Latest: %v", err)
				}
				want := images.Choice{Tag: tags1(tt.tags, tt.want), Why: tt.why, Held: tt.held}
				if got != want {
					t.Errorf("Latest =\n%+v\nwant\n%+v", got, want)
				}
			}
		})
	}
}

func reversed(ts []images.Tag) []images.Tag {
	r := slices.Clone(ts)
	slices.Reverse(r)
	return r
}

func tags1(ts []images.Tag, name string) images.Tag {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	panic("no tag " + name)
}

func TestCompare(t *testing.T) {
	tests := []struct {
		policy config.ImagePolicy
		a, b   string
		want   int
	}{
		{policy(), "1.10.0", "1.9.0", 1},
		{policy(), "1.9.0", "1.10.0", -1},
		{policy(), "1.2.3", "1.2.3", 0},
		{policy(), "v1.2.3", "1.2.3", 1},
		{policy(), "1.1.0-rc.1", "1.0.0", 1}, // the range decides what qualifies, not the order
		{policy(), "3.0.0", "1.0.0", 1},      // out of range all the same
		{policy(), "latest", "0.0.1", -1},    // not a version: below every version
		{policy(), "latest", "main", -1},     // two non-versions: byte-wise
		{policy(), "x.sig", "y", -1},         // excludes do not order
		{policy(alphabetical("")), "b", "a", 1},
		{policy(alphabetical(config.OrderDesc)), "b", "a", -1},
		{policy(numerical("")), "10", "9", 1},
		{policy(numerical(config.OrderDesc)), "10", "9", -1},
		{policy(numerical(config.OrderDesc)), "latest", "9", -1},
		{policy(numerical("")), "2.0", "2", 1},
		{policy(numerical(""), filter(`^main-[a-z]+-(?P<ts>[0-9]+)$`, "$ts")), "main-zzz-2", "main-aaa-10", -1},
		{policy(numerical(""), filter(`^main-[a-z]+-(?P<ts>[0-9]+)$`, "$ts")), "10", "main-aaa-1", -1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s,%s", tt.a, tt.b), func(t *testing.T) {
			p, err := images.Compile(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Compare(tt.a, tt.b); got != tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := p.Compare(tt.b, tt.a); got != -tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy config.ImagePolicy
		want   string
	}{{
		name:   "no policy",
		policy: policy(func(p *config.ImagePolicy) { p.Policy = config.TagPolicy{} }),
		want:   "image policy app: policy sets 0 of semver, alphabetical and numerical; set exactly one",
	}, {
		name: "two policies",
		policy: policy(func(p *config.ImagePolicy) {
			p.Policy.Numerical = &config.OrderPolicy{}
		}),
		want: "image policy app: policy sets 2 of semver, alphabetical and numerical; set exactly one",
	}, {
		name:   "range",
		policy: policy(semverRange("not a range")),
		want:   `image policy app: policy.semver.range "not a range" is not a semver range: `,
	}, {
		name:   "order",
		policy: policy(numerical("up")),
		want:   `image policy app: order is "up"; use asc or desc`,
	}, {
		name:   "pattern",
		policy: policy(filter(`(`, "")),
		want:   `image policy app: filterTags.pattern "(" is not a regular expression: `,
	}, {
		name:   "extract names a missing group",
		policy: policy(filter(`^main-(?P<ts>[0-9]+)$`, "$tss")),
		want:   `image policy app: filterTags.extract refers to group "tss", which pattern "^main-(?P<ts>[0-9]+)$" does not define`,
	}, {
		name:   "extract names a missing numbered group",
		policy: policy(filter(`^main-([0-9]+)$`, "${2}")),
		want:   `image policy app: filterTags.extract refers to group "2"`,
	}, {
		name:   "exclude",
		policy: policy(exclude(`[`)),
		want:   `image policy app: exclude "[" is not a regular expression: `,
	}, {
		name:   "minimumAge",
		policy: policy(minimumAge(-time.Hour)),
		want:   "image policy app: minimumAge is negative; use a positive duration such as 24h",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := images.Compile(tt.policy)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Compile = %v, %v; want error %s", p, err, tt.want)
			}
		})
	}
	if _, err := images.Compile(policy(filter(`^main-([0-9]+)$`, "$$$1"))); err != nil {
		t.Errorf("Compile with $$ in extract: %v", err)
	}
}

func FuzzLatest(f *testing.F) {
	f.Add("1.0.0\nv1.2.0\nlatest\n1.3.0-rc.1\nx.sig", ">=1.0.0", "", "", uint8(0), uint8(0))
	f.Add("main-a-1\nmain-b-2\nmain-c-x", "", `^main-[a-z]+-(?P<ts>[0-9]+)$`, "$ts", uint8(2), uint8(24))
	f.Add("b\na\nc.att", "", `^(?P<x>.*)$`, "${x}${x}", uint8(1), uint8(3))
	f.Add("1e3\nNaN\n-Inf\n0x1p-2\n", "", "", "", uint8(5), uint8(0))
	f.Add("\x00\xff\n1.0.0+\nv\n", "<=1 || >=2.0.0-0", `(`, "$", uint8(0), uint8(1))
	f.Add("main-a-0\nmain-a-0\n\n0\n", "", "", "", uint8(5), uint8(8))
	f.Fuzz(func(t *testing.T, list, rng, pattern, extract string, kind, age uint8) {
		p := config.ImagePolicy{Name: "fuzz", Image: "example.com/fuzz", MinimumAge: config.Duration{Duration: time.Duration(age%32) * time.Hour}}
		order := config.OrderAsc
		if kind&4 != 0 {
			order = config.OrderDesc
		}
		switch kind % 3 {
		case 0:
			p.Policy.Semver = &config.SemverPolicy{Range: rng}
		case 1:
			p.Policy.Alphabetical = &config.OrderPolicy{Order: order}
		case 2:
			p.Policy.Numerical = &config.OrderPolicy{Order: order}
		}
		if pattern != "" {
			p.FilterTags = &config.FilterTags{Pattern: pattern, Extract: extract}
		}
		c, err := images.Compile(p)
		if err != nil {
			return
		}
		var in []images.Tag
		seen := map[string]bool{}
		for i, name := range strings.Split(list, "\n") {
			if seen[name] { // a repository lists each tag once
				continue
			}
			seen[name] = true
			tag := images.Tag{Name: name, Created: now.Add(-time.Duration(i) * 7 * time.Hour)}
			if i%3 == 2 {
				tag.Created = time.Time{}
			}
			in = append(in, tag)
		}
		got, err := c.Latest(in, now)
		again, errAgain := c.Latest(reversed(in), now)
		if (err == nil) != (errAgain == nil) || got.Tag.Name != again.Tag.Name || got.Why != again.Why || got.Held != again.Held {
			t.Fatalf("Latest depends on the order of the tags: %+v, %v; reversed %+v, %v", got, err, again, errAgain)
		}
		if err != nil {
			if !errors.Is(err, images.ErrNoTag) {
				t.Fatalf("error %v does not wrap ErrNoTag", err)
			}
			return
		}
		if !slices.ContainsFunc(in, func(t images.Tag) bool { return t.Name == got.Tag.Name }) {
			t.Fatalf("Latest chose %q, which is not a tag", got.Tag.Name)
		}
		for _, tag := range in {
			if a, b := c.Compare(got.Tag.Name, tag.Name), c.Compare(tag.Name, got.Tag.Name); a != -b {
				t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", got.Tag.Name, tag.Name, a, tag.Name, got.Tag.Name, b)
			}
		}
	})
}

// FuzzExclude checks that an exclude pattern excludes exactly the tags its
// regexp matches, the default patterns (tested by suffix) included.
func FuzzExclude(f *testing.F) {
	for _, p := range config.DefaultExcludes() {
		for _, tag := range []string{"sha256-ff.sig", ".sig", "sig", "a\n.sig", ".sig\n", "x.att.sig", "x.SIG", "\xff.sbom", "\xe2\x82.att"} {
			f.Add(p, tag)
		}
	}
	f.Add(`^.*é$`, "\xc3\xc3\xa9")
	f.Add(`^.*\x{FFFD}$`, "a\xff")
	f.Add(`(?i)^.*\.sig$`, "a.SIG")
	f.Add(`(?s)^.*\.sig$`, "a\n.sig")
	f.Add(`^.*\.sig`, "a.sig\n")
	f.Fuzz(func(t *testing.T, pattern, tag string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		p, err := images.Compile(policy(alphabetical(""), exclude(pattern)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Latest([]images.Tag{{Name: tag}}, now)
		if excluded, want := err != nil, re.MatchString(tag); excluded != want {
			t.Fatalf("exclude %q of tag %q: excluded %v, regexp matches %v", pattern, tag, excluded, want)
		}
	})
}

// TestLatestAllocations keeps per-tag work free of allocations where the
// policy allows it: the allocations of Latest do not grow with the number of
// tags in alphabetical order, and by at most two a tag with an extract.
func TestLatestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; allocations are counted without -race")
	}
	for _, tt := range []struct {
		name   string
		policy config.ImagePolicy
		perTag float64
	}{
		{"alphabetical", policy(alphabetical("")), 0},
		{"numerical extract", policy(numerical(""), filter(`^main-(?P<ts>[0-9]+)$`, "$ts")), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := images.Compile(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			allocs := func(n int) float64 {
				in := make([]images.Tag, n)
				for i := range in {
					in[i] = images.Tag{Name: fmt.Sprintf("main-%d", 1700000000+i)}
					if i%10 == 0 {
						in[i].Name = fmt.Sprintf("sha256-%064x.sig", i)
					}
				}
				return testing.AllocsPerRun(10, func() {
					if _, err := p.Latest(in, now); err != nil {
						t.Fatal(err)
					}
				})
			}
			small, large := allocs(200), allocs(2000)
			if per := (large - small) / 1800; per > tt.perTag {
				t.Errorf("Latest allocates %.2f times a tag (%v for 200 tags, %v for 2000), want at most %v", per, small, large, tt.perTag)
			}
		})
	}
}

func BenchmarkLatest(b *testing.B) {
	for _, bb := range []struct {
		name   string
		policy config.ImagePolicy
		tag    func(i int) string
	}{
		{"semver", policy(semverRange(">=1.0.0 <5.0.0")), func(i int) string {
			switch i % 10 {
			case 0:
				return fmt.Sprintf("sha256-%064x.sig", i)
			case 1:
				return fmt.Sprintf("%d.%d.%d-rc.1", i%7, i%13, i%100)
			case 2:
				return fmt.Sprintf("main-%07x", i)
			}
			return fmt.Sprintf("v%d.%d.%d", i%7, i%13, i)
		}},
		{"numerical extract", policy(numerical(""), filter(`^main-[a-f0-9]+-(?P<ts>[0-9]+)$`, "$ts")), func(i int) string {
			if i%10 == 0 {
				return fmt.Sprintf("sha256-%064x.sig", i)
			}
			return fmt.Sprintf("main-%07x-%d", i*7919, 1700000000+i*60)
		}},
		{"alphabetical", policy(alphabetical("")), func(i int) string {
			return fmt.Sprintf("2025%04d-%07x", i, i*7919)
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			p, err := images.Compile(bb.policy)
			if err != nil {
				b.Fatal(err)
			}
			in := make([]images.Tag, 10_000)
			for i := range in {
				in[i] = images.Tag{Name: bb.tag(i), Created: now.Add(-time.Duration(i) * time.Minute)}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Latest(in, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
