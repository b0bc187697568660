package plugin

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestOrderedOutput: jobs finishing in any order print as if they ran one
// after another; the first unfinished job writes through at once.
func TestOrderedOutput(t *testing.T) {
	var out, errOut strings.Builder
	o := newOrderedOutput(&out, &errOut, 3)
	stdout := make([]func(string), 3)
	stderr := make([]func(string), 3)
	for i := range 3 {
		so, se := o.streams(i)
		stdout[i] = func(s string) { fmt.Fprint(so, s) }
		stderr[i] = func(s string) { fmt.Fprint(se, s) }
	}
	stderr[2]("c-progress\n")
	stdout[2]("c\n")
	o.done(2)
	stderr[0]("a-progress\n")
	if errOut.String() != "a-progress\n" {
		t.Fatalf("the first job should write through: stderr %q", errOut.String())
	}
	stderr[1]("b-progress\n")
	stdout[0]("a\n")
	o.done(0)
	if errOut.String() != "a-progress\nb-progress\n" {
		t.Fatalf("the second job's held output should follow the first's end: stderr %q", errOut.String())
	}
	stdout[1]("b\n")
	o.done(1)
	if out.String() != "a\nb\nc\n" || errOut.String() != "a-progress\nb-progress\nc-progress\n" {
		t.Errorf("stdout %q, stderr %q, want each in job order", out.String(), errOut.String())
	}
}

// TestOrderedOutputFinish: output held behind a job that never ran (the
// run stopped before its wave) is written by finish.
func TestOrderedOutputFinish(t *testing.T) {
	var out, errOut strings.Builder
	o := newOrderedOutput(&out, &errOut, 3)
	so, _ := o.streams(2)
	fmt.Fprint(so, "c\n")
	o.done(2)
	o.done(0)
	if out.String() != "" {
		t.Fatalf("written before its turn: %q", out.String())
	}
	o.finish()
	if out.String() != "c\n" {
		t.Errorf("after finish: %q, want c", out.String())
	}
}

// TestOrderedOutputConcurrent writes from many goroutines (run with -race).
func TestOrderedOutputConcurrent(t *testing.T) {
	var out, errOut strings.Builder
	const n = 16
	o := newOrderedOutput(&out, &errOut, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			so, se := o.streams(i)
			for j := range 10 {
				fmt.Fprintf(so, "%d.%d\n", i, j)
				fmt.Fprintf(se, "e%d.%d\n", i, j)
			}
			o.done(i)
		})
	}
	wg.Wait()
	var want, wantErr strings.Builder
	for i := range n {
		for j := range 10 {
			fmt.Fprintf(&want, "%d.%d\n", i, j)
			fmt.Fprintf(&wantErr, "e%d.%d\n", i, j)
		}
	}
	if out.String() != want.String() || errOut.String() != wantErr.String() {
		t.Errorf("output out of order:\n%s", out.String())
	}
}
