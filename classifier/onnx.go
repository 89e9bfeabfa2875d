package classifier

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"switchyard/classifier/onnxpb"
	"switchyard/features"
)

// ONNX graph interface. Inputs: ids int64 [batch, n] (hashed n-gram ids, 0 is
// padding), task int64 [batch] (task-label id, 0 for none), dense float32
// [batch, features.NumDense]. Output: quality float32 [batch, models].
const (
	InputIDs      = "ids"
	InputTask     = "task"
	InputDense    = "dense"
	OutputQuality = "quality"

	// OpsetVersion is the ONNX operator set the export targets.
	OpsetVersion = 17
	irVersion    = 8

	metaKey = "switchyard.metadata" // JSON of Metadata
)

// ExportONNX returns m as a serialised ONNX model with its Metadata as
// model metadata (key "switchyard.metadata", plus one readable key per field).
func ExportONNX(m *Model) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("export onnx: %w", err)
	}
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return nil, fmt.Errorf("export onnx: metadata: %w", err)
	}
	models, _ := json.Marshal(m.Meta.Models)
	val, _ := json.Marshal(m.Meta.Validation)
	d, hid, nout := int64(m.dim), int64(m.hidden), int64(m.nout)
	buckets := int64(m.Meta.FeatureSpec.Buckets)

	// The n-gram embeddings and the sparse path share one table, gathered
	// once: row id is [Emb[id] | Sparse[id]], k = d + nout wide. One matrix
	// product weighs the gathered rows twice, by 1/count (the bag mean) and
	// by 1/√count (the sparse path), and the input of the layers is
	//   x = [mean of rows (k) | rows/√count (k) | task's row (k) | dense]
	// with zero rows in w1 and ws wherever a part is not used, and the
	// identity from the sparse path's sum to the logits in ws.
	k := d + nout
	table := make([]float32, buckets*k)
	for r := int64(0); r < buckets; r++ {
		copy(table[r*k:r*k+d], m.Emb[r*d:r*d+d])
		copy(table[r*k+d:r*k+k], m.Sparse[r*nout:r*nout+nout])
	}
	inX := 3*k + int64(features.NumDense)
	w1 := make([]float32, inX*hid)
	ws := make([]float32, inX*nout)
	for _, part := range xParts(d, nout) {
		copy(w1[part.at*hid:(part.at+part.rows)*hid], m.W1[part.from*hid:(part.from+part.rows)*hid])
		copy(ws[part.at*nout:(part.at+part.rows)*nout], m.Ws[part.from*nout:(part.from+part.rows)*nout])
	}
	for j := int64(0); j < nout; j++ {
		ws[(k+d+j)*nout+j] = 1 // the sparse path's sum goes straight to logit j
	}
	g := &onnxpb.GraphProto{
		Name: "switchyard_predictor",
		Input: []*onnxpb.ValueInfoProto{
			valueInfo(InputIDs, onnxpb.TensorProto_INT64, dimParam("batch"), dimParam("n")),
			valueInfo(InputTask, onnxpb.TensorProto_INT64, dimParam("batch")),
			valueInfo(InputDense, onnxpb.TensorProto_FLOAT, dimParam("batch"), dimValue(int64(features.NumDense))),
		},
		Output: []*onnxpb.ValueInfoProto{
			valueInfo(OutputQuality, onnxpb.TensorProto_FLOAT, dimParam("batch"), dimValue(nout)),
		},
		Initializer: []*onnxpb.TensorProto{
			floatTensor("embedding", table, buckets, k),
			floatTensor("w1", w1, inX, hid),
			floatTensor("b1", m.B1, hid),
			floatTensor("w2", m.W2, hid, nout),
			floatTensor("b2", m.B2, nout),
			floatTensor("ws", ws, inX, nout),
			floatTensor("prior", m.Prior, buckets, nout),
			int64Tensor("axis1", []int64{1}, 1),
			int64Tensor("axis2", []int64{2}, 1),
			int64Tensor("flat", []int64{-1, 2 * k}, 2),
			floatTensor("one", []float32{1}),
			int64Tensor("zero_i", []int64{0}),
		},
		Node: []*onnxpb.NodeProto{
			node("Gather", []string{"embedding", InputIDs}, "rows", intAttr("axis", 0)),
			node("Greater", []string{InputIDs, "zero_i"}, "present"),
			node("Cast", []string{"present"}, "present_f", intAttr("to", int64(onnxpb.TensorProto_FLOAT))),
			node("Unsqueeze", []string{"present_f", "axis1"}, "present3"),
			node("ReduceSum", []string{"present3", "axis2"}, "count", intAttr("keepdims", 1)),
			node("Max", []string{"count", "one"}, "count1"),
			node("Div", []string{"present3", "count1"}, "mean_w"),
			node("Sqrt", []string{"count1"}, "count_sqrt"),
			node("Div", []string{"present3", "count_sqrt"}, "sparse_w"),
			node("Concat", []string{"mean_w", "sparse_w"}, "weights", intAttr("axis", 1)),
			node("MatMul", []string{"weights", "rows"}, "sums"),
			node("Reshape", []string{"sums", "flat"}, "sums_flat"),
			node("Gather", []string{"embedding", InputTask}, "task_vec", intAttr("axis", 0)),
			node("Concat", []string{"sums_flat", "task_vec", InputDense}, "x", intAttr("axis", 1)),
			node("MatMul", []string{"x", "w1"}, "h_lin"),
			node("Add", []string{"h_lin", "b1"}, "h_pre"),
			node("Relu", []string{"h_pre"}, "h"),
			node("MatMul", []string{"h", "w2"}, "z_lin"),
			node("MatMul", []string{"x", "ws"}, "z_wide"),
			node("Add", []string{"z_lin", "z_wide"}, "z_sum"),
			node("Gather", []string{"prior", InputTask}, "z_prior", intAttr("axis", 0)),
			node("Add", []string{"z_sum", "z_prior"}, "z_all"),
			node("Add", []string{"z_all", "b2"}, "logits"),
			node("Sigmoid", []string{"logits"}, OutputQuality),
		},
	}
	mp := &onnxpb.ModelProto{
		IrVersion:       irVersion,
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: "", Version: OpsetVersion}},
		ProducerName:    "switchyard",
		ProducerVersion: m.Meta.Version,
		DocString:       "Switchyard routing predictor: expected quality of each model for a request",
		Graph:           g,
		MetadataProps: []*onnxpb.StringStringEntryProto{
			{Key: metaKey, Value: string(meta)},
			{Key: "switchyard.models", Value: string(models)},
			{Key: "switchyard.feature_spec_id", Value: m.Meta.FeatureSpecID},
			{Key: "switchyard.data_fingerprint", Value: m.Meta.DataFingerprint},
			{Key: "switchyard.created_at", Value: m.Meta.CreatedAt.UTC().Format(time.RFC3339)},
			{Key: "switchyard.validation", Value: string(val)},
			{Key: "switchyard.predictor_version", Value: m.Meta.Version},
		},
	}
	b, err := proto.Marshal(mp)
	if err != nil {
		return nil, fmt.Errorf("export onnx: %w", err)
	}
	return b, nil
}

// WriteONNX exports m to path atomically (temporary file, fsync, rename).
func WriteONNX(path string, m *Model) error {
	b, err := ExportONNX(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic writes b to a temporary file beside path and renames it
// into place. The file gets the permissions os.Create gives (0666 less the
// umask), not os.CreateTemp's 0600: a predictor is written by one user (the
// training job) and read by another (the server).
func writeFileAtomic(path string, b []byte) error {
	// a random name that cannot collide in practice; O_EXCL makes sure
	tmpName := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-"+rand.Text()+".tmp")
	tmp, err := os.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadONNX loads a model exported by ExportONNX from path: its metadata and
// weights, checked for consistency. A file that is not such a model (truncated,
// corrupt, another graph) gives an error that says so.
func ReadONNX(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	m, err := ParseONNX(b)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	return m, nil
}

// ParseONNX is ReadONNX on bytes.
func ParseONNX(b []byte) (*Model, error) {
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("not a valid ONNX file (truncated or corrupt?): %w", err)
	}
	if mp.Graph == nil {
		return nil, fmt.Errorf("not a valid ONNX file: no graph")
	}
	if err := checkInterface(mp.Graph); err != nil {
		return nil, err
	}
	meta, err := decodeMetadata(mp.MetadataProps)
	if err != nil {
		return nil, err
	}
	m := &Model{Meta: meta}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range mp.Graph.Initializer {
		inits[t.Name] = t
	}
	for _, w := range []struct {
		name string
		dst  *[]float32
	}{{"embedding", &m.Emb}, {"w1", &m.W1}, {"b1", &m.B1}, {"w2", &m.W2}, {"b2", &m.B2}, {"ws", &m.Ws}, {"prior", &m.Prior}} {
		t, ok := inits[w.name]
		if !ok {
			return nil, fmt.Errorf("initializer %q missing", w.name)
		}
		vals, err := floatsOf(t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", w.name, err)
		}
		*w.dst = vals
	}
	if err := m.splitSharedTable(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// graphInputs are the graph's inputs, in order.
func graphInputs() []string { return []string{InputIDs, InputTask, InputDense} }

// checkInterface checks the graph's inputs and output by name and order:
// what the scorers feed and read.
func checkInterface(g *onnxpb.GraphProto) error {
	want := graphInputs()
	if len(g.Input) != len(want) {
		return fmt.Errorf("not a Switchyard predictor: the graph has %d inputs, want %v", len(g.Input), want)
	}
	for i, in := range g.Input {
		if in.GetName() != want[i] {
			return fmt.Errorf("not a Switchyard predictor: graph input %d is %q, want %q", i, in.GetName(), want[i])
		}
	}
	if len(g.Output) != 1 || g.Output[0].GetName() != OutputQuality {
		return fmt.Errorf("not a Switchyard predictor: the graph's outputs are not [%s]", OutputQuality)
	}
	return nil
}

// decodeMetadata reads the predictor's Metadata from the model's metadata
// entries and checks its feature spec.
func decodeMetadata(props []*onnxpb.StringStringEntryProto) (Metadata, error) {
	var metaJSON string
	for _, p := range props {
		if p.GetKey() == metaKey {
			metaJSON = p.GetValue()
		}
	}
	var meta Metadata
	if metaJSON == "" {
		return meta, fmt.Errorf("not a Switchyard predictor: metadata %q missing", metaKey)
	}
	if err := json.Unmarshal([]byte(metaJSON), &meta); err != nil {
		return meta, fmt.Errorf("metadata %q: %w", metaKey, err)
	}
	if err := meta.FeatureSpec.Validate(); err != nil {
		return meta, err
	}
	if got := meta.FeatureSpec.ID(); got != meta.FeatureSpecID {
		return meta, fmt.Errorf("metadata: feature spec id %s does not match its spec (%s)", meta.FeatureSpecID, got)
	}
	return meta, nil
}

// ReadMetadata reads a predictor's metadata and checks its graph's inputs
// and output, without decoding its weights (a walk over the bytes that
// copies none of them): enough to open an ONNX Runtime session over the
// bytes before ParseONNX decodes them, so that a predictor being loaded is
// not held in memory three times at once.
func ReadMetadata(b []byte) (Metadata, error) {
	var props []*onnxpb.StringStringEntryProto
	var g onnxpb.GraphProto
	graph := false
	corrupt := func() (Metadata, error) {
		return Metadata{}, fmt.Errorf("not a valid ONNX file (truncated or corrupt?)")
	}
	err := walkFields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 7: // ModelProto.graph
			graph = true
			return walkFields(v, func(num protowire.Number, v []byte) error {
				var vi onnxpb.ValueInfoProto
				switch num {
				case 11: // GraphProto.input
					if err := proto.Unmarshal(v, &vi); err != nil {
						return err
					}
					g.Input = append(g.Input, &vi)
				case 12: // GraphProto.output
					if err := proto.Unmarshal(v, &vi); err != nil {
						return err
					}
					g.Output = append(g.Output, &vi)
				}
				return nil
			})
		case 14: // ModelProto.metadata_props
			var e onnxpb.StringStringEntryProto
			if err := proto.Unmarshal(v, &e); err != nil {
				return err
			}
			props = append(props, &e)
		}
		return nil
	})
	if err != nil {
		return corrupt()
	}
	if !graph {
		return Metadata{}, fmt.Errorf("not a valid ONNX file: no graph")
	}
	if err := checkInterface(&g); err != nil {
		return Metadata{}, err
	}
	return decodeMetadata(props)
}

// walkFields calls f with the number and bytes of every length-delimited
// field of a protobuf message, skipping the others.
func walkFields(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// xPart is a run of rows of the exported layers' input that comes from
// rows of the model's own input (see ExportONNX).
type xPart struct{ at, from, rows int64 }

// xParts maps the exported input [mean (k) | sparse sum (k) | task row (k)
// | dense] with k = d + nout onto the model's [bag (d) | task (d) | dense].
func xParts(d, nout int64) []xPart {
	k := d + nout
	return []xPart{{0, 0, d}, {2 * k, d, d}, {3 * k, 2 * d, int64(features.NumDense)}}
}

// splitSharedTable undoes the export's layout: the table's columns go back
// to the embeddings and the sparse path, the layers' rows to their places.
// A predictor exported before the sparse path has an embedding table of
// width d and layers on the model's own input: its sparse path is zero.
func (m *Model) splitSharedTable() error {
	m.setDims()
	d, nout := int64(m.dim), int64(m.nout)
	buckets := int64(m.Meta.FeatureSpec.Buckets)
	hid := int64(m.hidden)
	switch int64(len(m.Emb)) {
	case buckets * d:
		m.Sparse = make([]float32, buckets*nout)
		return nil
	case buckets * (d + nout):
	default:
		return fmt.Errorf("weight embedding has %d values, want %d × %d or %d × %d", len(m.Emb), buckets, d, buckets, d+nout)
	}
	k := d + nout
	inX := 3*k + int64(features.NumDense)
	if int64(len(m.W1)) != inX*hid || int64(len(m.Ws)) != inX*nout {
		return fmt.Errorf("weights w1 (%d values) and ws (%d) do not match a shared table of width %d", len(m.W1), len(m.Ws), k)
	}
	// repack the table in place, the largest weight is not held twice while
	// a predictor loads: embeddings first (row r moves from r·k to r·d, never
	// past a row not yet moved), then the sparse columns after them
	table := m.Emb
	tmp := make([]float32, buckets*nout)
	for r := int64(0); r < buckets; r++ {
		copy(tmp[r*nout:r*nout+nout], table[r*k+d:r*k+k])
	}
	for r := int64(0); r < buckets; r++ {
		copy(table[r*d:r*d+d], table[r*k:r*k+d])
	}
	copy(table[buckets*d:], tmp)
	emb, sparse := table[:buckets*d:buckets*d], table[buckets*d:]
	// the rows the export leaves at zero, and the identity, must be as it
	// wrote them: the pure-Go forward pass does not read them, ONNX Runtime does
	used := make([]bool, inX)
	for _, p := range xParts(d, nout) {
		for r := p.at; r < p.at+p.rows; r++ {
			used[r] = true
		}
	}
	for r := int64(0); r < inX; r++ {
		identity := r >= k+d && r < 2*k
		for c := int64(0); c < hid && !used[r]; c++ {
			if m.W1[r*hid+c] != 0 {
				return fmt.Errorf("weight w1: row %d is not zero as the export writes it", r)
			}
		}
		for j := int64(0); j < nout && !used[r]; j++ {
			want := float32(0)
			if identity && r-k-d == j {
				want = 1
			}
			if m.Ws[r*nout+j] != want {
				return fmt.Errorf("weight ws: row %d is not the export's (the sparse path's identity, or zero)", r)
			}
		}
	}
	in := int64(InputDim(m.dim))
	w1, ws := make([]float32, in*hid), make([]float32, in*nout)
	for _, p := range xParts(d, nout) {
		copy(w1[p.from*hid:(p.from+p.rows)*hid], m.W1[p.at*hid:(p.at+p.rows)*hid])
		copy(ws[p.from*nout:(p.from+p.rows)*nout], m.Ws[p.at*nout:(p.at+p.rows)*nout])
	}
	m.Emb, m.Sparse, m.W1, m.Ws = emb, sparse, w1, ws
	return nil
}

func floatsOf(t *onnxpb.TensorProto) ([]float32, error) {
	if t.DataType != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("data type %d, want float", t.DataType)
	}
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	if len(t.FloatData) > 0 {
		if int64(len(t.FloatData)) != n {
			return nil, fmt.Errorf("%d values for shape %v", len(t.FloatData), t.Dims)
		}
		return t.FloatData, nil
	}
	if int64(len(t.RawData)) != 4*n {
		return nil, fmt.Errorf("%d bytes of data for shape %v (want %d)", len(t.RawData), t.Dims, 4*n)
	}
	if n > 0 && littleEndian && uintptr(unsafe.Pointer(&t.RawData[0]))%4 == 0 {
		// the decoded message's own copy of the bytes already holds the
		// floats as they are laid out in memory here: use it, rather than
		// hold a second copy of every weight while a predictor loads
		return unsafe.Slice((*float32)(unsafe.Pointer(&t.RawData[0])), n), nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
	}
	return out, nil
}

// littleEndian reports whether this machine stores numbers as ONNX's raw
// tensor data does.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func floatTensor(name string, vals []float32, dims ...int64) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: raw}
}

func int64Tensor(name string, vals []int64, dims ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: vals}
}

func node(op string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: op, Name: output + "_" + op, Input: inputs, Output: []string{output}, Attribute: attrs}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func dimParam(name string) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: name}}
}

func dimValue(v int64) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func valueInfo(name string, elem onnxpb.TensorProto_DataType, dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{
		Name: name,
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: int32(elem),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}
