package approvals

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Syntax is the dialect of a CODEOWNERS file.
type Syntax string

// CODEOWNERS dialects.
const (
	// GitHub reads patterns like gitignore (a / at the start or in the
	// middle anchors a pattern at the root) and has no sections,
	// exclusions or character classes.
	GitHub Syntax = "github"
	// GitLab anchors only patterns that start with /, reads [...] as a
	// character class, and adds sections and exclusions (!pattern).
	GitLab Syntax = "gitlab"
)

// Codeowners is a parsed CODEOWNERS file: who owns which paths.
type Codeowners struct {
	Syntax Syntax
	// Sections hold the rules. A GitHub file has one, unnamed; a GitLab
	// file has the unnamed default section (the rules before any
	// heading) and one per distinct heading.
	Sections []Section
}

// Section is a group of rules that own paths on their own: a path owned in
// two sections needs an approval from each.
type Section struct {
	Name string // as first written, without brackets; "" for the default section
	// Optional sections (GitLab ^[Name]) need no approval.
	Optional bool
	// Approvals is how many owners of a path must approve it: GitLab's
	// [Name][N], otherwise 1.
	Approvals int
	Line      int // of the heading; 0 for the default section
	Rules     []Rule
}

// Rule is one pattern line. In each section the last rule that matches a
// path decides its owners.
type Rule struct {
	Line    int
	Pattern string // as written
	// Owners are the owners written on the line (@user, @org/team,
	// @group/subgroup, an email) or, in a GitLab section whose heading
	// names default owners, those when the line names none. A rule with
	// no owners leaves the paths it matches unowned.
	Owners []string
	// Exclude marks a GitLab exclusion (!pattern): a path it matches is
	// owned by no rule of its section.
	Exclude bool

	match pattern
}

// Ownership is who owns a path in one section.
type Ownership struct {
	Section   string // "" for the default section
	Optional  bool
	Approvals int      // approvals the path needs from Owners
	Owners    []string // never empty
	Line      int      // of the rule that decided
}

// LineError is a line of a CODEOWNERS file that could not be read. Like
// the forges, ParseCodeowners skips such lines.
type LineError struct {
	Line int
	Msg  string
}

// Error says which line and what is wrong with it.
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// maxLineErrors bounds the errors ParseCodeowners reports; a file that is
// not a CODEOWNERS file at all says so in a few lines.
const maxLineErrors = 50

// ParseCodeowners reads a CODEOWNERS file in the given syntax (anything but
// GitLab reads as GitHub). It always returns the rules it could read; the
// error, when not nil, joins a *LineError for each line it skipped, as the
// forges skip them. A skipped line owns nothing, so show the error to
// whoever maintains the file.
func ParseCodeowners(text string, syntax Syntax) (*Codeowners, error) {
	if syntax != GitLab {
		syntax = GitHub
	}
	c := &Codeowners{Syntax: syntax, Sections: []Section{{Approvals: 1}}}
	cur := 0
	var defaults []string
	var errs []error
	skipped := 0
	fail := func(line int, format string, args ...any) {
		if len(errs) < maxLineErrors {
			errs = append(errs, &LineError{Line: line, Msg: fmt.Sprintf(format, args...)})
		} else {
			skipped++
		}
	}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' || strings.HasPrefix(line, "^[") {
			if syntax != GitLab {
				fail(n, "sections ([Name]) are GitLab syntax, which GitHub ignores; remove the heading or read the file as GitLab's")
				continue
			}
			s, owners, err := parseHeading(line)
			if err == nil {
				if bad := badOwner(owners, syntax); bad != "" {
					err = errors.New(bad)
				}
			}
			if err != nil {
				// The rules under a heading that cannot be read still
				// form a section of their own: folded into the section
				// above, they would take over its paths.
				fail(n, "%v", err)
				s, owners = Section{Name: shorten(strings.TrimSpace(line)), Approvals: 1}, nil
			}
			s.Line = n
			defaults = owners
			cur = -1
			for j := range c.Sections {
				if j > 0 && strings.EqualFold(c.Sections[j].Name, s.Name) {
					cur = j // GitLab joins sections of the same name
				}
			}
			if cur < 0 {
				c.Sections = append(c.Sections, s)
				cur = len(c.Sections) - 1
			}
			continue
		}
		fields := lineFields(line)
		if len(fields) == 0 {
			continue // blanks and a stray \r
		}
		r := Rule{Line: n, Pattern: fields[0], Owners: fields[1:]}
		if strings.HasPrefix(r.Pattern, "!") {
			if syntax != GitLab {
				fail(n, "negation (!pattern) does not work in GitHub's CODEOWNERS; write the path with no owners to leave it unowned")
				continue
			}
			if len(r.Owners) > 0 {
				fail(n, "an exclusion (!pattern) takes no owners; remove them")
				continue
			}
			r.Exclude = true
			r.Pattern = r.Pattern[1:]
		}
		if bad := badOwner(r.Owners, syntax); bad != "" {
			fail(n, "%s", bad)
			continue
		}
		p, err := compilePattern(r.Pattern, syntax)
		if err != nil {
			fail(n, "%v", err)
			continue
		}
		r.match = p
		if len(r.Owners) == 0 && !r.Exclude {
			r.Owners = defaults
		}
		c.Sections[cur].Rules = append(c.Sections[cur].Rules, r)
	}
	if skipped > 0 {
		errs = append(errs, fmt.Errorf("and %d more lines that could not be read", skipped))
	}
	return c, errors.Join(errs...)
}

// lineFields splits a rule line at unescaped blanks and drops a trailing
// comment (a field starting with #).
func lineFields(line string) []string {
	var fields []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			fields = append(fields, b.String())
			b.Reset()
		}
	}
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '\\' && i+1 < len(line):
			b.WriteByte(ch)
			b.WriteByte(line[i+1])
			i++
		case ch == ' ' || ch == '\t' || ch == '\r':
			flush()
		case ch == '#' && b.Len() == 0 && len(fields) > 0:
			return fields
		default:
			b.WriteByte(ch)
		}
	}
	flush()
	return fields
}

// parseHeading reads a GitLab section heading: [Name], ^[Name] for an
// optional section, [Name][N] for N approvals, then default owners.
func parseHeading(line string) (Section, []string, error) {
	s := Section{Approvals: 1}
	if rest, ok := strings.CutPrefix(line, "^"); ok {
		s.Optional = true
		line = rest
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return s, nil, errors.New("section heading has no closing ]; write it as [Name]")
	}
	s.Name = strings.TrimSpace(line[1:end])
	if s.Name == "" {
		return s, nil, errors.New("section heading has no name; write it as [Name]")
	}
	rest := line[end+1:]
	if strings.HasPrefix(rest, "[") {
		close := strings.IndexByte(rest, ']')
		if close < 0 {
			return s, nil, errors.New("approval count has no closing ]; write it as [Name][2]")
		}
		n, err := strconv.Atoi(rest[1:close])
		if err != nil || n < 1 || n > 1000 {
			return s, nil, fmt.Errorf("approval count %q is not a number from 1 to 1000; write it as [Name][2]", rest[1:close])
		}
		s.Approvals = n
		rest = rest[close+1:]
	}
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return s, nil, errors.New("section heading has text right after ]; separate default owners with a space")
	}
	owners := lineFields("x " + strings.TrimSpace(rest))[1:]
	return s, owners, nil
}

// badOwner explains the first owner that is not a user, a team or an
// email, or returns "".
func badOwner(owners []string, syntax Syntax) string {
	for _, o := range owners {
		if msg := ownerProblem(o, syntax); msg != "" {
			return fmt.Sprintf("owner %q %s", shorten(o), msg)
		}
	}
	return ""
}

func ownerProblem(o string, syntax Syntax) string {
	name, handle := strings.CutPrefix(o, "@")
	if !handle {
		local, domain, ok := strings.Cut(o, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return "is not an owner; write @user, @org/team or an email address"
		}
		return ""
	}
	if syntax == GitLab {
		name = strings.TrimPrefix(name, "@") // @@role
	}
	parts := strings.Split(name, "/")
	if syntax != GitLab && len(parts) > 2 {
		return "has more than one /; write a team as @org/team"
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			return "is not an owner; write @user, @org/team or an email address"
		}
	}
	return ""
}

func shorten(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// Owners returns who owns path (slash-separated, relative to the repository
// root) in each section that owns it, in the order of the sections.
func (c *Codeowners) Owners(path string) []Ownership {
	if c == nil {
		return nil
	}
	path = cleanPath(path)
	if path == "" {
		return nil
	}
	var out []Ownership
	for _, s := range c.Sections {
		var decided *Rule
		excluded := false
		for i := len(s.Rules) - 1; i >= 0; i-- {
			r := &s.Rules[i]
			if !r.match.match(path) {
				continue
			}
			if r.Exclude {
				excluded = true
				break
			}
			if decided == nil {
				decided = r
			}
		}
		if excluded || decided == nil || len(decided.Owners) == 0 {
			continue
		}
		out = append(out, Ownership{
			Section:   s.Name,
			Optional:  s.Optional,
			Approvals: s.Approvals,
			Owners:    decided.Owners,
			Line:      decided.Line,
		})
	}
	return out
}

// cleanPath makes a changed file's path relative to the root: no leading
// / or ./.
func cleanPath(p string) string {
	for {
		switch {
		case strings.HasPrefix(p, "/"):
			p = p[1:]
		case strings.HasPrefix(p, "./"):
			p = p[2:]
		default:
			return p
		}
	}
}
