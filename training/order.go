package training

import (
	"math/rand"
	"slices"
)

// The order of an epoch over training tables (FitTable), whether the
// examples are streamed from the tables or held in memory (TableJob.Cache):
// the row groups in an order drawn from the epoch's seed, their training
// examples through a shuffle buffer, then batches. Both take the same
// random draws, so they give the same sequence of optimiser steps and the
// same model.

// defaultBuffer is the shuffle buffer when Settings.Buffer is 0.
const defaultBuffer = 1 << 16

// epochRand is the random source of one epoch of table training: the row
// groups' order, the buffer's draws and the dropout of its steps.
func epochRand(seed int64, epoch int) *rand.Rand {
	return rand.New(rand.NewSource(seed + int64(epoch)*1_000_003))
}

// shuffled returns the blocks in an order drawn from rng.
func shuffled[T any](rng *rand.Rand, blocks []T) []T {
	order := slices.Clone(blocks)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// feeder passes the examples it is given through a shuffle buffer and
// hands them on in batches.
type feeder struct {
	rng   *rand.Rand
	buf   []Example
	batch []Example
	idx   []int // 0, 1, …: the batch's positions, as step takes them
	step  func(batch []Example, idx []int)
}

func newFeeder(rng *rand.Rand, buffer, batchSize int, step func(batch []Example, idx []int)) *feeder {
	if buffer <= 0 {
		buffer = defaultBuffer
	}
	return &feeder{rng: rng, buf: make([]Example, 0, buffer), batch: make([]Example, 0, batchSize),
		idx: indices(batchSize), step: step}
}

// add takes e (a shallow copy: its slices become the feeder's); once the
// buffer is full, each new example replaces one drawn at random, which
// goes on to the batch.
func (f *feeder) add(e *Example) {
	if len(f.buf) < cap(f.buf) {
		f.buf = append(f.buf, *e)
		return
	}
	i := f.rng.Intn(len(f.buf))
	f.push(f.buf[i])
	f.buf[i] = *e
}

func (f *feeder) push(e Example) {
	f.batch = append(f.batch, e)
	if len(f.batch) == cap(f.batch) {
		f.flush()
	}
}

func (f *feeder) flush() {
	if len(f.batch) > 0 {
		f.step(f.batch, f.idx[:len(f.batch)])
	}
	f.batch = f.batch[:0]
}

// finish hands on what the buffer still holds, shuffled, and the last
// partial batch.
func (f *feeder) finish() {
	f.rng.Shuffle(len(f.buf), func(i, j int) { f.buf[i], f.buf[j] = f.buf[j], f.buf[i] })
	for _, e := range f.buf {
		f.push(e)
	}
	f.buf = f.buf[:0]
	f.flush()
}

// indices are 0, 1, …, n-1.
func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
