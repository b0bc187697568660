package render

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

const (
	// maxTemplateElements bounds the list elements one chart's templates may
	// make with until, untilStep, seq, append, prepend and concat: nested
	// "range (until 100000)" loops would otherwise run for hours.
	maxTemplateElements = 10_000_000
	// maxTemplateList bounds one list, so a list doubled over and over is
	// stopped while it is still small.
	maxTemplateList = 1_000_000
	// maxTemplateKeys bounds the private keys and certificates one chart's
	// templates may generate (each RSA key costs tens of milliseconds).
	maxTemplateKeys = 32
	// maxTemplateHashes bounds bcrypt and htpasswd calls, which are slow by
	// design.
	maxTemplateHashes = 64
	// maxTemplateIndent bounds the count of indent and nindent; real charts
	// indent by a few dozen spaces at most.
	maxTemplateIndent = 10_000
)

// errTemplateBudget marks a template function refused for going over the
// render's budget.
var errTemplateBudget = errors.New("template over its budget")

// templateBudget bounds, across one chart render, what the template
// functions that take counts or sizes may make, and stops the render at the
// next such call once ctx ends. Helm runs one chart's templates in a single
// goroutine, so it needs no lock.
type templateBudget struct {
	ctx      context.Context
	maxBytes int64 // the most one string may hold; 16 times that, all of them
	bytes    int64 // string bytes made by the wrapped functions
	elements int64 // list elements made
	keys     int   // keys and certificates generated
	hashes   int   // bcrypt and htpasswd calls
	// refused is the first refusal: Helm formats template errors as text,
	// so the error chain does not survive the engine.
	refused error
}

// HelmFuncs returns the template functions for a chart from an untrusted
// tree that is rendered outside render, by the Helm SDK itself (the live
// diff of a Helm release, as action.Configuration.CustomTemplateFuncs): the
// functions that take counts or sizes capped as Render caps them for limits,
// stopping at their next call once ctx ends, and a lookup that reads
// nothing. A refusal reaches the caller as the template's error.
func HelmFuncs(ctx context.Context, limits Limits) template.FuncMap {
	b := &templateBudget{ctx: ctx, maxBytes: limits.withDefaults().MaxTotalBytes}
	return b.untrusted()
}

// untrusted is funcs with lookup returning nothing: Helm's client-only
// default, made explicit, so a render never reads a cluster (RS-11).
func (b *templateBudget) untrusted() template.FuncMap {
	funcs := b.funcs()
	funcs["lookup"] = func(string, string, string, string) (map[string]any, error) {
		return map[string]any{}, nil
	}
	return funcs
}

// funcs returns Helm's functions that take counts or sizes (and the string
// builders a template can double a value with), wrapped with the budget's
// checks; they otherwise behave as Helm's own, which they call.
func (b *templateBudget) funcs() template.FuncMap {
	orig := sprig.TxtFuncMap()
	out := template.FuncMap{}
	wrap := func(name string, pre func(args []reflect.Value) error) {
		out[name] = b.wrap(name, orig[name], pre)
	}
	arg := func(args []reflect.Value, i int) int64 { return args[i].Int() }
	wrap("until", func(args []reflect.Value) error { return b.checkElements("until", span(0, arg(args, 0), 1)) })
	wrap("untilStep", func(args []reflect.Value) error {
		return b.checkElements("untilStep", span(arg(args, 0), arg(args, 1), arg(args, 2)))
	})
	wrap("seq", func(args []reflect.Value) error {
		n := seqSpan(args)
		if err := b.checkElements("seq", n); err != nil {
			return err
		}
		return b.checkBytes("seq", satMul(n, 21))
	})
	wrap("repeat", func(args []reflect.Value) error {
		return b.checkBytes("repeat", satMul(max(arg(args, 0), 0), int64(args[1].Len())))
	})
	for _, name := range []string{"indent", "nindent"} {
		wrap(name, func(args []reflect.Value) error {
			n := arg(args, 0)
			if n > maxTemplateIndent {
				return fmt.Errorf("%s %d: more than %d spaces: %w", name, n, maxTemplateIndent, errTemplateBudget)
			}
			lines := int64(strings.Count(args[1].String(), "\n") + 1)
			return b.checkBytes(name, satAdd(int64(args[1].Len()), satMul(max(n, 0), lines)))
		})
	}
	for _, name := range []string{"randAlphaNum", "randAlpha", "randNumeric", "randAscii", "randBytes"} {
		wrap(name, func(args []reflect.Value) error { return b.checkBytes(name, satMul(2, max(arg(args, 0), 0))) })
	}
	for _, name := range []string{"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey"} {
		wrap(name, func([]reflect.Value) error {
			if b.keys++; b.keys > maxTemplateKeys {
				return fmt.Errorf("more than %d keys or certificates generated in one render: %w", maxTemplateKeys, errTemplateBudget)
			}
			return nil
		})
	}
	for _, name := range []string{"bcrypt", "htpasswd"} {
		wrap(name, func([]reflect.Value) error {
			if b.hashes++; b.hashes > maxTemplateHashes {
				return fmt.Errorf("more than %d bcrypt or htpasswd calls in one render: %w", maxTemplateHashes, errTemplateBudget)
			}
			return nil
		})
	}
	// Functions whose result size is known only afterwards, but is at most
	// a small multiple of their arguments: counted after each call, which
	// stops a value doubled over and over.
	for _, name := range []string{"replace", "cat", "join", "wrap", "wrapWith", "b64enc", "b32enc", "quote", "squote", "toString", "toStrings", "append", "push", "prepend", "concat", "list"} {
		wrap(name, nil)
	}
	for _, name := range []string{"printf", "print", "println"} {
		fn := map[string]any{"printf": fmt.Sprintf, "print": fmt.Sprint, "println": fmt.Sprintln}[name]
		out[name] = b.wrap(name, fn, nil)
	}
	return out
}

// wrap returns fn with the same signature, calling pre before it, counting
// what it returns after, and stopping when ctx has ended. A refusal becomes
// the function's error, or a panic that text/template turns into one.
func (b *templateBudget) wrap(name string, fn any, pre func(args []reflect.Value) error) any {
	fv := reflect.ValueOf(fn)
	ft := fv.Type()
	fail := func(err error) []reflect.Value {
		err = fmt.Errorf("%s: %w; fix the template or its values", name, err)
		if b.refused == nil {
			b.refused = err
		}
		if ft.NumOut() == 0 || ft.Out(ft.NumOut()-1) != reflect.TypeFor[error]() {
			panic(err)
		}
		out := make([]reflect.Value, ft.NumOut())
		for i := range out {
			out[i] = reflect.Zero(ft.Out(i))
		}
		out[len(out)-1] = reflect.ValueOf(&err).Elem()
		return out
	}
	return reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		if err := b.ctx.Err(); err != nil {
			return fail(fmt.Errorf("render stopped: %w", err))
		}
		if err := b.precheck(name, args); err != nil {
			return fail(err)
		}
		if pre != nil {
			if err := pre(args); err != nil {
				return fail(err)
			}
		}
		var out []reflect.Value
		if ft.IsVariadic() {
			out = fv.CallSlice(args)
		} else {
			out = fv.Call(args)
		}
		if len(out) > 0 {
			if err := b.count(name, out[0]); err != nil {
				return fail(err)
			}
		}
		return out
	}).Interface()
}

// precheck refuses a call before it runs when its arguments alone (the
// strings it would copy, the elements of the lists it would join) are over
// what its result may hold, so the result is never made.
func (b *templateBudget) precheck(name string, args []reflect.Value) error {
	var size, elements int64
	for _, a := range args {
		if a.Kind() == reflect.Interface && !a.IsNil() {
			a = a.Elem()
		}
		switch a.Kind() {
		case reflect.String:
			size += int64(a.Len())
		case reflect.Slice, reflect.Array:
			// Long lists are counted by length only; what a join of
			// them makes is counted after the call.
			if a.Len() <= 10_000 && (a.Type().Elem().Kind() == reflect.String || a.Type().Elem().Kind() == reflect.Interface) {
				for i := range a.Len() {
					if e := reflect.Indirect(a.Index(i)); e.Kind() == reflect.Interface && !e.IsNil() && e.Elem().Kind() == reflect.String {
						size += int64(e.Elem().Len())
					} else if e.Kind() == reflect.String {
						size += int64(e.Len())
					}
				}
			}
			elements += int64(a.Len())
		}
	}
	if err := b.checkBytes(name, size); err != nil {
		return err
	}
	return b.checkElements(name, elements)
}

// count adds what a function returned to the budget.
func (b *templateBudget) count(name string, v reflect.Value) error {
	if v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return b.addBytes(name, int64(v.Len()))
	case reflect.Slice:
		return b.addElements(name, int64(v.Len()))
	}
	return nil
}

// checkBytes refuses a string of n bytes over the budget; addBytes also
// counts it.
func (b *templateBudget) checkBytes(name string, n int64) error {
	if n > b.maxBytes {
		return fmt.Errorf("a string of %d bytes is more than the %d bytes a whole render may produce: %w", n, b.maxBytes, errTemplateBudget)
	}
	if satAdd(b.bytes, n) > 16*b.maxBytes {
		return fmt.Errorf("the chart's templates made more than %d bytes of strings (%s in a loop?): %w", 16*b.maxBytes, name, errTemplateBudget)
	}
	return nil
}

func (b *templateBudget) addBytes(name string, n int64) error {
	if err := b.checkBytes(name, n); err != nil {
		return err
	}
	b.bytes += n
	return nil
}

// checkElements refuses a list of n elements over the budget; addElements
// also counts it.
func (b *templateBudget) checkElements(name string, n int64) error {
	if n > maxTemplateList {
		return fmt.Errorf("a list of %d elements is more than the %d one list may hold: %w", n, maxTemplateList, errTemplateBudget)
	}
	if satAdd(b.elements, n) > maxTemplateElements {
		return fmt.Errorf("the chart's templates made more than %d list elements (%s in nested loops?): %w", maxTemplateElements, name, errTemplateBudget)
	}
	return nil
}

func (b *templateBudget) addElements(name string, n int64) error {
	if err := b.checkElements(name, n); err != nil {
		return err
	}
	b.elements += n
	return nil
}

// span is how many numbers untilStep(start, stop, step) makes.
func span(start, stop, step int64) int64 {
	switch {
	case step > 0 && stop > start:
		return int64(min((uint64(stop)-uint64(start)+uint64(step)-1)/uint64(step), saturated))
	case step < 0 && stop < start:
		s := uint64(-(step + 1)) + 1
		return int64(min((uint64(start)-uint64(stop)+s-1)/s, saturated))
	}
	return 0
}

// seqSpan is how many numbers seq makes from its arguments, or more.
func seqSpan(args []reflect.Value) int64 {
	var params []int64
	for _, a := range args {
		if a.Kind() == reflect.Slice {
			for i := range a.Len() {
				params = append(params, a.Index(i).Int())
			}
			continue
		}
		params = append(params, a.Int())
	}
	start, end, step := int64(1), int64(0), int64(1)
	switch len(params) {
	case 1:
		end = params[0]
	case 2:
		start, end = params[0], params[1]
	case 3:
		start, step, end = params[0], params[1], params[2]
	default:
		return 0
	}
	if step < 0 {
		step = -(step + 1) + 1
	}
	step = max(step, 1)
	if end < start {
		start, end = end, start
	}
	return satAdd(span(start, end, step), 1)
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > saturated/b {
		return saturated
	}
	return a * b
}
