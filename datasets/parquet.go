package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// rowsPerRowGroup bounds the rows a Writer buffers in memory before it
// flushes a row group, so writing a large log needs bounded memory.
const rowsPerRowGroup = 128 * 1024

// Writer writes rows of type T (a struct with parquet tags, such as
// OutcomeRecord) to a Parquet file. It writes to a hidden temporary file in the
// same folder and renames it to the final path on Close, so a reader never
// sees a partial file. Files are zstd-compressed and carry SchemaVersion under
// SchemaVersionKey in their key/value metadata.
//
// A Writer is not safe for concurrent use. The usual pattern is
//
//	w, err := NewWriter[OutcomeRecord](path)
//	if err != nil { return err }
//	defer w.Abort() // no-op after a successful Close
//	if err := w.Write(rows...); err != nil { return err }
//	return w.Close()
type Writer[T any] struct {
	path string
	tmp  *os.File
	pw   *parquet.GenericWriter[T]
	done bool
}

// NewWriter starts writing a Parquet file of T rows that will appear at path
// when Close succeeds.
func NewWriter[T any](path string) (w *Writer[T], err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	// parquet-go panics when T cannot be mapped to a Parquet schema.
	defer func() {
		if p := recover(); p != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			w, err = nil, fmt.Errorf("write %s: row type %T has no Parquet schema: %v", path, *new(T), p)
		}
	}()
	pw := parquet.NewGenericWriter[T](tmp,
		parquet.Compression(writerCodec()),
		parquet.KeyValueMetadata(SchemaVersionKey, SchemaVersion),
		parquet.MaxRowsPerRowGroup(rowsPerRowGroup),
	)
	return &Writer[T]{path: path, tmp: tmp, pw: pw}, nil
}

// Write appends rows to the file.
func (w *Writer[T]) Write(rows ...T) error {
	if w.done {
		return fmt.Errorf("write %s: writer already closed", w.path)
	}
	if _, err := w.pw.Write(rows); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// Flush ends the current row group, so that its rows are encoded to the
// (temporary) file instead of held in memory; long-lived writers call it
// to bound their memory.
func (w *Writer[T]) Flush() error {
	if w.done {
		return fmt.Errorf("flush %s: writer already closed", w.path)
	}
	if err := w.pw.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", w.path, err)
	}
	return nil
}

// Close flushes the rows, syncs the temporary file to disk and renames it to
// the final path. On error the temporary file is removed and nothing appears
// at the path. Calling Close again returns nil.
func (w *Writer[T]) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.pw.Close()
	if err == nil {
		err = w.tmp.Chmod(0o644) // CreateTemp makes 0600; data files are meant to be shared
	}
	if err == nil {
		err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	syncDir(filepath.Dir(w.path))
	return nil
}

// Abort discards the rows written so far and removes the temporary file. It
// does nothing after Close.
func (w *Writer[T]) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// syncDir makes a rename durable. It is best effort: some platforms cannot
// sync a directory, and the file itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// WriteFile writes rows to a Parquet file at path atomically (see Writer).
func WriteFile[T any](path string, rows []T) error {
	w, err := NewWriter[T](path)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.Write(rows...); err != nil {
		return err
	}
	return w.Close()
}

// ReadFile reads all rows of a Parquet file written by Writer. Before reading
// it checks the schema version and that every column of T exists in the file
// with a compatible type (see CheckSchema); without that check parquet-go
// would silently return zero values for columns it cannot find. Extra columns
// in the file are ignored.
func ReadFile[T any](path string) ([]T, error) {
	return readPath(path, readParquet[T])
}

// CheckFile checks a Parquet file written by Writer without reading its
// rows: framing, schema version, and every column of T present with a
// compatible type (as ReadFile does first). The error names the path.
func CheckFile[T any](path string) error {
	_, err := readPath(path, func(r io.ReaderAt, size int64) (_ struct{}, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("corrupt Parquet file: %v", p)
			}
		}()
		f, err := openVersioned(r, size)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, CheckSchema(f.Schema(), parquet.SchemaOf(new(T)))
	})
	return err
}

// readPath opens the file at path and calls read with it and its size; every
// error names the path.
func readPath[R any](path string, read func(r io.ReaderAt, size int64) (R, error)) (R, error) {
	var zero R
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := read(f, st.Size())
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

// readParquet reads a versioned, schema-checked Parquet file from r. It never
// panics: parquet-go panics on some corrupt inputs, and those become errors.
func readParquet[T any](r io.ReaderAt, size int64) (rows []T, err error) {
	defer recoverCorrupt(&rows, &err)
	f, err := openVersioned(r, size)
	if err != nil {
		return nil, err
	}
	if err := CheckSchema(f.Schema(), parquet.SchemaOf(new(T))); err != nil {
		return nil, err
	}
	n := f.NumRows()
	if n < 0 {
		return nil, fmt.Errorf("corrupt Parquet file: footer says %d rows", n)
	}
	pr := parquet.NewGenericReader[T](f)
	defer pr.Close()
	// Grow in steps instead of trusting the footer's row count for one big
	// allocation. Each Read fills fresh zero elements, so slices inside rows
	// (such as Candidates) are never shared between rows.
	rows = make([]T, 0, min(n, 64*1024))
	for {
		if len(rows) == cap(rows) {
			rows = slices.Grow(rows, max(1024, len(rows)))
		}
		k, err := pr.Read(rows[len(rows):cap(rows)])
		rows = rows[:len(rows)+k]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		if k == 0 {
			// No progress and no error: stop rather than loop forever.
			break
		}
	}
	if int64(len(rows)) != n {
		return nil, fmt.Errorf("corrupt Parquet file: read %d rows, footer says %d", len(rows), n)
	}
	return rows, nil
}

// recoverCorrupt, deferred by a reader of Parquet files, turns a panic of
// parquet-go, which panics on some corrupt inputs, into an error and drops
// the rows read so far.
func recoverCorrupt[T any](rows *[]T, err *error) {
	if p := recover(); p != nil {
		*rows, *err = nil, fmt.Errorf("corrupt Parquet file: %v", p)
	}
}

// parquetMagic starts and ends every (unencrypted) Parquet file.
const parquetMagic = "PAR1"

// openParquet opens a Parquet file after checking its framing (magic bytes and
// a footer length that fits in the file), so that truncated or foreign files
// give a clear error and a bogus footer length cannot cause a huge allocation.
func openParquet(r io.ReaderAt, size int64) (*parquet.File, error) {
	const frame = 2*len(parquetMagic) + 4
	if size < int64(frame) {
		return nil, fmt.Errorf("not a Parquet file: only %d bytes", size)
	}
	var head [4]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return nil, fmt.Errorf("read footer: %w", err)
	}
	if string(head[:]) != parquetMagic {
		return nil, fmt.Errorf("not a Parquet file: starts with %q, want %q", head[:], parquetMagic)
	}
	if string(tail[4:]) != parquetMagic {
		return nil, fmt.Errorf("truncated or not a Parquet file: ends with %q, want %q", tail[4:], parquetMagic)
	}
	if footer := int64(binary.LittleEndian.Uint32(tail[:4])); footer > size-int64(frame) {
		return nil, fmt.Errorf("corrupt Parquet file: footer of %d bytes in a file of %d bytes", footer, size)
	}
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, fmt.Errorf("corrupt Parquet file: %w", err)
	}
	return f, nil
}

// openVersioned opens a Parquet file that Writer wrote: its framing checked
// (see openParquet) and its schema version this one.
func openVersioned(r io.ReaderAt, size int64) (*parquet.File, error) {
	f, err := openParquet(r, size)
	if err != nil {
		return nil, err
	}
	if err := checkSchemaVersion(f); err != nil {
		return nil, err
	}
	return f, nil
}

// checkSchemaVersion refuses files without SchemaVersion in their metadata.
func checkSchemaVersion(f *parquet.File) error {
	v, ok := f.Lookup(SchemaVersionKey)
	if !ok {
		return fmt.Errorf("schema version missing (no %q metadata), want %q: not a Switchyard log, or written by another tool", SchemaVersionKey, SchemaVersion)
	}
	if v != SchemaVersion {
		return fmt.Errorf("schema version %q, want %q: convert the file or use a matching Switchyard version", v, SchemaVersion)
	}
	return nil
}

// CheckSchema reports whether rows of schema want can be read from a file of
// schema file: every leaf column of want must exist in file, with the same
// physical type, a compatible logical type (a plain BYTE_ARRAY reads as a
// string), the same nesting, and no nulls where want has none. Extra columns
// in file are fine. The error names every offending column by its dotted path,
// such as "candidates.list.element.model".
func CheckSchema(file, want *parquet.Schema) error {
	var problems []string
	for _, path := range want.Columns() {
		if p := checkColumn(file, want, path); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkColumn describes how the leaf column at path of want does not match
// file, or returns "".
func checkColumn(file, want *parquet.Schema, path []string) string {
	name := strings.Join(path, ".")
	w, _ := want.Lookup(path...)
	f, ok := file.Lookup(path...)
	if !ok {
		return fmt.Sprintf("column %q missing", name)
	}
	ft, wt := f.Node.Type(), w.Node.Type()
	if ft.Kind() != wt.Kind() || !compatibleLogical(ft.LogicalType(), wt.LogicalType()) {
		return fmt.Sprintf("column %q has type %s, want %s", name, typeName(ft), typeName(wt))
	}
	if f.MaxRepetitionLevel != w.MaxRepetitionLevel {
		return fmt.Sprintf("column %q has repetition level %d, want %d (a list where a single value is expected, or the reverse)",
			name, f.MaxRepetitionLevel, w.MaxRepetitionLevel)
	}
	if f.MaxDefinitionLevel > w.MaxDefinitionLevel {
		return fmt.Sprintf("column %q may be null (definition level %d, want at most %d)", name, f.MaxDefinitionLevel, w.MaxDefinitionLevel)
	}
	return ""
}

// typeName prints a Parquet type as its physical type and, if any, its
// logical type: "DOUBLE", "BYTE_ARRAY (STRING)".
func typeName(t parquet.Type) string {
	s := t.Kind().String()
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		s += " (" + lt.String() + ")"
	}
	return s
}

// compatibleLogical reports whether a file column's logical type file can be
// read as logical type want (both on the same physical type).
func compatibleLogical(file, want *format.LogicalType) bool {
	fs, ws := logicalName(file), logicalName(want)
	if fs == ws {
		return true
	}
	if fs != "" {
		return false
	}
	// Writers that predate logical types leave strings and signed integers
	// unannotated; the physical type already says what they are.
	switch t := want.Value.(type) {
	case *format.StringType:
		return true
	case *format.IntType:
		return t.IsSigned && (t.BitWidth == 32 || t.BitWidth == 64)
	}
	return false
}

func logicalName(t *format.LogicalType) string {
	if t == nil || t.Value == nil {
		return ""
	}
	return t.String()
}

// ReadDecisions reads a decision log written by WriteDecisions.
func ReadDecisions(path string) ([]DecisionRecord, error) { return ReadFile[DecisionRecord](path) }

// WriteDecisions writes a decision log atomically.
func WriteDecisions(path string, rows []DecisionRecord) error { return WriteFile(path, rows) }

// ReadOutcomes reads an outcome log written by WriteOutcomes.
func ReadOutcomes(path string) ([]OutcomeRecord, error) { return ReadFile[OutcomeRecord](path) }

// WriteOutcomes writes an outcome log atomically.
func WriteOutcomes(path string, rows []OutcomeRecord) error { return WriteFile(path, rows) }

// ReadPrompts reads a prompt table written by WritePrompts.
func ReadPrompts(path string) ([]PromptRecord, error) { return ReadFile[PromptRecord](path) }

// WritePrompts writes a prompt table atomically.
func WritePrompts(path string, rows []PromptRecord) error { return WriteFile(path, rows) }
