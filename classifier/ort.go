package classifier

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"switchyard/features"
)

// RuntimeEnv is the environment variable that names the ONNX Runtime shared
// library when no flag does.
const RuntimeEnv = "SWITCHYARD_ORT_LIB"

// RuntimeLibName is the file name of the ONNX Runtime library that
// `make ort` installs into .ort/ at the repository root.
const RuntimeLibName = "libonnxruntime.so.1"

// installHint tells a user how to get the library.
const installHint = "install it with `make ort` (it fetches onnxruntime-node@1.30.0 from the npm registry into .ort/), " +
	"then pass --ort-lib PATH or set " + RuntimeEnv

// FindRuntimeLibrary returns the ONNX Runtime library to use: flag when
// set, else $SWITCHYARD_ORT_LIB, else .ort/libonnxruntime.so.1 in the current
// directory or one of its parents, else next to the executable.
func FindRuntimeLibrary(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(RuntimeEnv); env != "" {
		return env
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	for _, d := range dirs {
		p := filepath.Join(d, ".ort", RuntimeLibName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(".ort", RuntimeLibName)
}

// The ONNX Runtime environment is process-wide by construction of the C
// library: it can be initialised once, from one library file. This state
// mirrors that fact; it is the package's only shared state.
var runtimeState struct {
	sync.Mutex
	path string
	err  error
}

// Runtime is a handle on the process's ONNX Runtime environment.
type Runtime struct {
	path    string
	version string
}

// OpenRuntime loads the ONNX Runtime shared library at path and initialises
// the environment. Opening the same path again returns a new handle on the
// same environment; opening another path once one is loaded is an error.
func OpenRuntime(path string) (*Runtime, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("onnx runtime library %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("onnx runtime library not found at %s: %s", abs, installHint)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("onnx runtime library %s is a directory: %s", abs, installHint)
	}
	mapLargeAllocations()
	runtimeState.Lock()
	defer runtimeState.Unlock()
	if runtimeState.path != "" {
		if runtimeState.path != abs {
			return nil, fmt.Errorf("onnx runtime already loaded from %s; cannot also load %s", runtimeState.path, abs)
		}
		if runtimeState.err != nil {
			return nil, runtimeState.err
		}
		return &Runtime{path: abs, version: ort.GetVersion()}, nil
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		// The C library may have been loaded half-way; it cannot be retried.
		runtimeState.path = abs
		runtimeState.err = fmt.Errorf("onnx runtime library %s could not be loaded (%v): is it ONNX Runtime 1.30 for linux x64? %s", abs, err, installHint)
		return nil, runtimeState.err
	}
	runtimeState.path = abs
	return &Runtime{path: abs, version: ort.GetVersion()}, nil
}

// Version is the ONNX Runtime version string.
func (r *Runtime) Version() string { return r.version }

// Path is the library file.
func (r *Runtime) Path() string { return r.path }

// ORTScorer scores with ONNX Runtime. All requests share one
// DynamicAdvancedSession, whose Run is safe for concurrent use. Input and
// output tensors are made once per worker and reused: the ids tensor is
// padded with 0 (which the graph ignores) to the next multiple of 64, so a
// few sizes serve every request and no tensor is created per request.
type ORTScorer struct {
	sess  *ort.DynamicAdvancedSession
	nout  int
	nb    int
	bufs  chan *ortBuffers
	made  atomic.Int64
	close sync.Once
}

type ortBuffers struct {
	ids   map[int]*ort.Tensor[int64] // by padded length
	task  *ort.Tensor[int64]
	dense *ort.Tensor[float32]
	out   *ort.Tensor[float32]
}

func (b *ortBuffers) destroy() {
	for _, t := range b.ids {
		t.Destroy()
	}
	b.task.Destroy()
	b.dense.Destroy()
	b.out.Destroy()
}

// NewORTScorer creates an ONNX Runtime session over the ONNX bytes of a
// predictor with metadata meta (as ReadMetadata or ParseONNX accepted them:
// both check the graph's inputs and output).
// The session runs with one intra-op and one inter-op thread: requests are
// parallel across goroutines, not inside one. (Asking ONNX Runtime for the
// graph's inputs would load the whole predictor into a second, temporary
// session: on a reload that was the largest transient use of memory.)
func NewORTScorer(rt *Runtime, onnxBytes []byte, meta Metadata) (*ORTScorer, error) {
	if rt == nil {
		return nil, errors.New("ort scorer: no runtime")
	}
	want := graphInputs()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort scorer: options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ort scorer: intra-op threads: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ort scorer: inter-op threads: %w", err)
	}
	// weights straight from the allocator, not the arena, which rounds a
	// large one up and keeps what it took: a reload holds two predictors
	if err := opts.AddSessionConfigEntry("session.use_device_allocator_for_initializers", "1"); err != nil {
		return nil, fmt.Errorf("ort scorer: initializer allocation: %w", err)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(onnxBytes, want, []string{OutputQuality}, opts)
	if err != nil {
		return nil, fmt.Errorf("ort scorer: create session: %w", err)
	}
	return &ORTScorer{sess: sess, nout: len(meta.Models), nb: meta.FeatureSpec.Buckets, bufs: make(chan *ortBuffers, runtime.GOMAXPROCS(0))}, nil
}

func (s *ORTScorer) getBuffers() (*ortBuffers, error) {
	select {
	case b := <-s.bufs:
		return b, nil
	default:
	}
	if s.made.Add(1) > int64(cap(s.bufs)) {
		s.made.Add(-1)
		return <-s.bufs, nil // as many runs at once as there are CPUs: wait for one to finish
	}
	b := &ortBuffers{ids: map[int]*ort.Tensor[int64]{}}
	var err error
	if b.task, err = ort.NewTensor(ort.NewShape(1), make([]int64, 1)); err != nil {
		s.made.Add(-1)
		return nil, fmt.Errorf("score: task tensor: %w", err)
	}
	if b.dense, err = ort.NewTensor(ort.NewShape(1, int64(features.NumDense)), make([]float32, features.NumDense)); err != nil {
		b.task.Destroy()
		s.made.Add(-1)
		return nil, fmt.Errorf("score: dense tensor: %w", err)
	}
	if b.out, err = ort.NewTensor(ort.NewShape(1, int64(s.nout)), make([]float32, s.nout)); err != nil {
		b.task.Destroy()
		b.dense.Destroy()
		s.made.Add(-1)
		return nil, fmt.Errorf("score: output tensor: %w", err)
	}
	return b, nil
}

func (s *ORTScorer) putBuffers(b *ortBuffers) {
	select {
	case s.bufs <- b:
	default:
		b.destroy() // more workers than the pool keeps: free the C memory
	}
}

// Score implements Scorer.
func (s *ORTScorer) Score(v *features.Vector, out []float32) error {
	if len(out) != s.nout {
		return fmt.Errorf("score: %w: output has %d slots for %d models", errBadInput, len(out), s.nout)
	}
	if err := checkVector(v, s.nb); err != nil {
		return err
	}
	b, err := s.getBuffers()
	if err != nil {
		return err
	}
	defer s.putBuffers(b)
	n := max(64, (len(v.IDs)+63)/64*64)
	idsT, ok := b.ids[n]
	if !ok {
		if idsT, err = ort.NewTensor(ort.NewShape(1, int64(n)), make([]int64, n)); err != nil {
			return fmt.Errorf("score: ids tensor: %w", err)
		}
		b.ids[n] = idsT
	}
	ids := idsT.GetData()
	for i, id := range v.IDs {
		ids[i] = int64(id)
	}
	clear(ids[len(v.IDs):])
	b.task.GetData()[0] = int64(v.TaskID)
	copy(b.dense.GetData(), v.Dense)
	if err := s.sess.Run([]ort.Value{idsT, b.task, b.dense}, []ort.Value{b.out}); err != nil {
		return fmt.Errorf("score: onnx runtime: %w", err)
	}
	copy(out, b.out.GetData())
	return nil
}

// Close implements Scorer.
func (s *ORTScorer) Close() error {
	var err error
	s.close.Do(func() {
		for {
			select {
			case b := <-s.bufs:
				b.destroy()
				continue
			default:
			}
			break
		}
		err = s.sess.Destroy()
		releaseFreedMemory()
	})
	return err
}
