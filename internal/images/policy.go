package images

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// Tag is one tag of a repository, with what the scanner learnt of it.
type Tag struct {
	Name string
	// Created is the created time of the tag's image config; zero if
	// unknown.
	Created time.Time
	Digest  string
}

// Choice is what a policy picks and why.
type Choice struct {
	Tag Tag
	// Why is a short reason for people, such as "highest of 14 tags in
	// >=1.0.0".
	Why string
	// Held says why a tag the policy would rank higher is not proposed
	// yet, such as "1.3.0 is 2h old, younger than minimumAge 24h"; empty
	// when the choice is the highest.
	Held string
}

// ErrNoTag is wrapped by every error of Latest: no tag qualifies. The
// message says why.
var ErrNoTag = errors.New("no tag qualifies")

// ErrTooYoung is wrapped, with ErrNoTag, by the error of Latest when tags
// qualify but each is younger than the policy's minimumAge (or of unknown
// age): there is nothing to propose yet, and nothing is wrong.
var ErrTooYoung = errors.New("every qualifying tag is younger than minimumAge")

type noTagError struct {
	msg   string
	young bool
}

func (e *noTagError) Error() string { return e.msg }

func (e *noTagError) Is(target error) bool {
	return target == ErrNoTag || (e.young && target == ErrTooYoung)
}

type kind int

const (
	bySemver kind = iota
	byAlphabet
	byNumber
)

// Policy chooses a tag of an image repository. Compile makes one; it is
// safe for concurrent use.
//
// Order: filterTags (when set) drops tags that do not match its pattern and
// gives the value the policy compares (the extract expansion, else the whole
// tag); exclude drops tags that match any of its patterns; the policy reads
// and orders the values. Of two tags with the same value (1.2.3 and v1.2.3,
// or two tags whose extract is equal), the one whose name sorts last
// byte-wise ranks higher, so the choice never depends on the order of the
// input.
type Policy struct {
	name       string
	image      string
	kind       kind
	desc       bool
	constraint *semver.Constraints
	rangeText  string
	filter     *regexp.Regexp
	extract    string
	excludes   []matcher
	minimumAge time.Duration
}

// expandRef is a regexp.Expand reference: $name, ${name}, or $$.
var expandRef = regexp.MustCompile(`\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))`)

// Compile compiles an image policy. Unset fields take config's defaults
// (an exclude list that is nil is config.DefaultExcludes, an empty order
// is asc), so a policy built in code without Default works as one loaded
// from gitops.yaml. Its errors are what config's Validate reports with a
// line; Compile repeats the checks for policies that never went through it.
func Compile(p config.ImagePolicy) (*Policy, error) {
	c := &Policy{name: p.Name, image: p.Image, minimumAge: p.MinimumAge.Duration}
	fail := func(format string, args ...any) (*Policy, error) {
		return nil, fmt.Errorf("image policy %s: %s", p.Name, fmt.Sprintf(format, args...))
	}
	var order *config.OrderPolicy
	n := 0
	if s := p.Policy.Semver; s != nil {
		n++
		cs, err := semver.NewConstraint(s.Range)
		if err != nil {
			return fail("policy.semver.range %q is not a semver range: %v; use a range such as \">=1.0.0 <2.0.0\"", s.Range, err)
		}
		c.kind, c.constraint, c.rangeText = bySemver, cs, s.Range
	}
	if p.Policy.Alphabetical != nil {
		n++
		c.kind, order = byAlphabet, p.Policy.Alphabetical
	}
	if p.Policy.Numerical != nil {
		n++
		c.kind, order = byNumber, p.Policy.Numerical
	}
	if n != 1 {
		return fail("policy sets %d of semver, alphabetical and numerical; set exactly one", n)
	}
	if order != nil {
		switch order.Order {
		case "", config.OrderAsc:
		case config.OrderDesc:
			c.desc = true
		default:
			return fail("order is %q; use asc or desc", order.Order)
		}
	}
	if ft := p.FilterTags; ft != nil {
		re, err := regexp.Compile(ft.Pattern)
		if err != nil {
			return fail("filterTags.pattern %q is not a regular expression: %v", ft.Pattern, err)
		}
		for _, m := range expandRef.FindAllStringSubmatch(ft.Extract, -1) {
			name := m[1] + m[2]
			if name == "" { // $$
				continue
			}
			if i, err := strconv.Atoi(name); err == nil && i <= re.NumSubexp() || re.SubexpIndex(name) >= 0 {
				continue
			}
			return fail("filterTags.extract refers to group %q, which pattern %q does not define", name, ft.Pattern)
		}
		c.filter, c.extract = re, ft.Extract
	}
	excludes := p.Exclude
	if excludes == nil {
		excludes = config.DefaultExcludes()
	}
	for _, e := range excludes {
		re, err := regexp.Compile(e)
		if err != nil {
			return fail("exclude %q is not a regular expression: %v", e, err)
		}
		c.excludes = append(c.excludes, newMatcher(re))
	}
	if c.minimumAge < 0 {
		return fail("minimumAge is negative; use a positive duration such as 24h")
	}
	return c, nil
}

// matcher matches a regexp, by a suffix test when the regexp is one, as
// the default excludes are: every tag goes through every exclude, and Go's
// regexps are slow at ^.*\.sig$.
type matcher struct {
	re     *regexp.Regexp
	suffix string
	fast   bool
}

func newMatcher(re *regexp.Regexp) matcher {
	suffix, ok := suffixOnly(re.String())
	return matcher{re: re, suffix: suffix, fast: ok}
}

func (m matcher) MatchString(s string) bool {
	if m.fast {
		return strings.HasSuffix(s, m.suffix) && strings.IndexByte(s[:len(s)-len(m.suffix)], '\n') < 0
	}
	return m.re.MatchString(s)
}

func (m matcher) String() string { return m.re.String() }

// suffixOnly returns lit when pattern is ^.*lit$ with a plain literal: it
// matches exactly the strings that end in lit and have no newline before
// it. A literal with U+FFFD is left to the regexp, which reads an invalid
// byte as U+FFFD.
func suffixOnly(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) != 4 {
		return "", false
	}
	s := re.Sub
	if s[0].Op != syntax.OpBeginText || s[3].Op != syntax.OpEndText ||
		s[1].Op != syntax.OpStar || s[1].Sub[0].Op != syntax.OpAnyCharNotNL ||
		s[2].Op != syntax.OpLiteral || s[2].Flags&syntax.FoldCase != 0 {
		return "", false
	}
	lit := string(s[2].Rune)
	if strings.ContainsRune(lit, utf8.RuneError) {
		return "", false
	}
	return lit, true
}

// key is what the policy compares of a tag.
type key struct {
	ok  bool // the policy can read the tag
	ver *semver.Version
	num float64
	str string
}

// Why a tag has no key.
const (
	readable = iota
	unmatched
	unreadable
)

// key reads a tag under the policy; buf is scratch space for the extract
// expansion, kept between calls.
func (p *Policy) key(tag string, buf *[]byte) (key, int) {
	v := tag
	if p.filter != nil {
		if p.extract == "" {
			if !p.filter.MatchString(tag) {
				return key{}, unmatched
			}
		} else {
			m := p.filter.FindStringSubmatchIndex(tag)
			if m == nil {
				return key{}, unmatched
			}
			*buf = p.filter.ExpandString((*buf)[:0], p.extract, tag, m)
			v = string(*buf)
		}
	}
	switch p.kind {
	case bySemver:
		ver, err := semver.NewVersion(v)
		if err != nil {
			return key{}, unreadable
		}
		return key{ok: true, ver: ver}, readable
	case byNumber:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return key{}, unreadable
		}
		return key{ok: true, num: f}, readable
	}
	return key{ok: true, str: v}, readable
}

// compare orders the keys of tags a and b: positive when the policy ranks
// a higher.
func (p *Policy) compare(ka, kb key, a, b string) int {
	switch {
	case !ka.ok && !kb.ok:
		return strings.Compare(a, b)
	case !ka.ok:
		return -1
	case !kb.ok:
		return 1
	}
	var c int
	switch p.kind {
	case bySemver:
		c = ka.ver.Compare(kb.ver)
	case byNumber:
		c = cmpFloat(ka.num, kb.num)
	default:
		c = strings.Compare(ka.str, kb.str)
	}
	if p.desc {
		c = -c
	}
	if c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Compare orders two tags under the policy: positive when it ranks a above
// b (a is newer), negative when below, zero only when a == b. filterTags
// applies (its extract is what is compared); the semver range, exclude and
// minimumAge do not, since they decide which tags qualify, not their order.
// A tag the policy cannot read (not matching filterTags, not a version, not
// a number) ranks below every tag it can; two such tags order byte-wise.
// Latest chooses the qualifying tag that Compare ranks highest.
func (p *Policy) Compare(a, b string) int {
	var buf []byte
	ka, _ := p.key(a, &buf)
	kb, _ := p.key(b, &buf)
	return p.compare(ka, kb, a, b)
}

// Latest chooses the tag to propose among tags: the highest under the
// policy of those that match filterTags, are not excluded, can be read (a
// version in the semver range, a number) and, with minimumAge, were
// created at least minimumAge before now. When a higher tag is held back
// by minimumAge, Choice.Held says so. The error, when no tag qualifies,
// wraps ErrNoTag (and ErrTooYoung when only minimumAge stands in the way)
// and says why.
//
// tags are a repository's tags, each name once; of two tags with the same
// name, which one Latest returns depends on their order.
func (p *Policy) Latest(tags []Tag, now time.Time) (Choice, error) {
	var (
		excluded                  = make([]int, len(p.excludes))
		unmatchedN, unreadableN   int
		qualifying, oldEnough     int
		best, bestOld, newest     = -1, -1, -1
		bestKey, bestOldKey, newK key
		buf                       []byte
		cutoff                    = now.Add(-p.minimumAge)
	)
tags:
	for i := range tags {
		name := tags[i].Name
		for j, re := range p.excludes {
			if re.MatchString(name) {
				excluded[j]++
				continue tags
			}
		}
		k, why := p.key(name, &buf)
		switch why {
		case unmatched:
			unmatchedN++
			continue
		case unreadable:
			unreadableN++
			continue
		}
		if p.constraint != nil {
			if newest < 0 || p.compare(k, newK, name, tags[newest].Name) > 0 {
				newest, newK = i, k
			}
			if !p.constraint.Check(k.ver) {
				continue
			}
		}
		qualifying++
		if best < 0 || p.compare(k, bestKey, name, tags[best].Name) > 0 {
			best, bestKey = i, k
		}
		if p.minimumAge > 0 && (tags[i].Created.IsZero() || tags[i].Created.After(cutoff)) {
			continue
		}
		oldEnough++
		if bestOld < 0 || p.compare(k, bestOldKey, name, tags[bestOld].Name) > 0 {
			bestOld, bestOldKey = i, k
		}
	}
	if best < 0 {
		var newestVer *semver.Version
		if newest >= 0 {
			newestVer = newK.ver
		}
		return Choice{}, p.noTag(tags, excluded, unmatchedN, unreadableN, newest, newestVer)
	}
	var held string
	if bestOld < 0 || p.compare(bestKey, bestOldKey, tags[best].Name, tags[bestOld].Name) > 0 {
		held = p.held(tags[best], now)
	}
	if bestOld < 0 {
		return Choice{}, &noTagError{young: true, msg: fmt.Sprintf("no tag of %s is old enough yet: %s (%s %s, none at least %s old)",
			p.image, held, count(qualifying, "tag"), p.describe(), short(p.minimumAge))}
	}
	why := fmt.Sprintf("%s of %s %s", p.rank(), count(qualifying, "tag"), p.describe())
	if oldEnough < qualifying {
		why = fmt.Sprintf("%s of %d of %s %s (%d held by minimumAge %s)", p.rank(), oldEnough, count(qualifying, "tag"), p.describe(),
			qualifying-oldEnough, short(p.minimumAge))
	}
	if p.extract != "" {
		why += ", comparing " + p.extract
	}
	return Choice{Tag: tags[bestOld], Why: why, Held: held}, nil
}

// rank names the place of the choice in the policy's order.
func (p *Policy) rank() string {
	switch {
	case p.kind == bySemver:
		return "highest"
	case p.desc:
		return "first"
	}
	return "last"
}

// describe names the tags the policy takes: "in >=1.0.0", "in numerical order".
func (p *Policy) describe() string {
	switch p.kind {
	case bySemver:
		return "in " + p.rangeText
	case byNumber:
		return "in numerical order"
	}
	return "in alphabetical order"
}

// held says why minimumAge holds t back.
func (p *Policy) held(t Tag, now time.Time) string {
	if t.Created.IsZero() {
		return fmt.Sprintf("%s has no known creation time, so minimumAge %s holds it", t.Name, short(p.minimumAge))
	}
	age := now.Sub(t.Created)
	if age < 0 {
		return fmt.Sprintf("%s was created %s after now, so minimumAge %s holds it", t.Name, ageText(-age), short(p.minimumAge))
	}
	return fmt.Sprintf("%s is %s old, younger than minimumAge %s", t.Name, ageText(age), short(p.minimumAge))
}

// noTag explains why no tag qualifies.
// newest is the index of the highest version outside the range, v its
// version.
func (p *Policy) noTag(tags []Tag, excluded []int, unmatched, unreadable, newest int, v *semver.Version) error {
	var b strings.Builder
	b.WriteString("no tag of ")
	b.WriteString(p.image)
	if p.kind == bySemver {
		b.WriteString(" matches ")
		b.WriteString(p.rangeText)
	} else {
		b.WriteString(" qualifies for ")
		b.WriteString(strings.TrimPrefix(p.describe(), "in "))
	}
	if len(tags) == 0 {
		b.WriteString(" (the repository has no tags)")
		return &noTagError{msg: b.String()}
	}
	parts := []string{count(len(tags), "tag")}
	for j, n := range excluded {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d excluded by %s", n, p.excludes[j]))
		}
	}
	if unmatched > 0 {
		parts = append(parts, fmt.Sprintf("%d not matching %s", unmatched, p.filter))
	}
	if unreadable > 0 {
		what := "not a version"
		if p.kind == byNumber {
			what = "not a number"
		}
		if p.extract != "" {
			what += " in " + p.extract
		}
		parts = append(parts, fmt.Sprintf("%d %s", unreadable, what))
	}
	if newest >= 0 {
		s := "newest " + tags[newest].Name
		if v.Prerelease() != "" {
			s += ", a pre-release, which a range takes only when it names one (such as >=1.0.0-0)"
		}
		parts = append(parts, s)
	}
	fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	return &noTagError{msg: b.String()}
}

// count writes n and noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// ageText writes an age cut to whole minutes from an hour and to whole
// seconds below, so that it never rounds up to the minimumAge it is
// younger than.
func ageText(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Truncate(time.Minute)
	case d >= time.Second:
		d = d.Truncate(time.Second)
	}
	return short(d)
}

// short writes a duration without its zero minutes and seconds: "24h",
// "1h30m".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
