package plugin

import (
	"io"
	"sync"
)

// orderedOutput lets jobs run at once while their output reads as if they
// ran one after another, in order: the first unfinished job writes through
// (so its progress shows as it happens), the others' writes are held until
// every job before them has finished.
type orderedOutput struct {
	mu          sync.Mutex
	out, errOut io.Writer
	jobs        []orderedJob
	turn        int // the job that writes through
}

type orderedJob struct {
	held []heldWrite
	done bool
}

// heldWrite is a write held for its turn: to errOut, or else to out.
type heldWrite struct {
	toErr bool
	p     []byte
}

func newOrderedOutput(out, errOut io.Writer, jobs int) *orderedOutput {
	return &orderedOutput{out: out, errOut: errOut, jobs: make([]orderedJob, jobs)}
}

// streams are job i's stdout and stderr.
func (o *orderedOutput) streams(i int) (io.Writer, io.Writer) {
	return orderedWriter{o, i, false}, orderedWriter{o, i, true}
}

// done says job i wrote all it will: the jobs after it take their turn,
// their held writes first.
func (o *orderedOutput) done(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.jobs[i].done = true
	for o.turn < len(o.jobs) && o.jobs[o.turn].done {
		o.turn++
		if o.turn < len(o.jobs) {
			for _, w := range o.jobs[o.turn].held {
				o.write(w.toErr, w.p)
			}
			o.jobs[o.turn].held = nil
		}
	}
}

// finish writes what is held, also of jobs after one that never ran.
func (o *orderedOutput) finish() {
	for i := range o.jobs {
		o.done(i)
	}
}

func (o *orderedOutput) write(toErr bool, p []byte) {
	if toErr {
		_, _ = o.errOut.Write(p)
	} else {
		_, _ = o.out.Write(p)
	}
}

type orderedWriter struct {
	o     *orderedOutput
	i     int
	toErr bool
}

func (w orderedWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.i == w.o.turn {
		w.o.write(w.toErr, p)
	} else {
		w.o.jobs[w.i].held = append(w.o.jobs[w.i].held, heldWrite{toErr: w.toErr, p: append([]byte(nil), p...)})
	}
	return len(p), nil
}
