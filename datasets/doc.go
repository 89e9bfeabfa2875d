// Package datasets holds Switchyard's data at rest: the Parquet schemas of the
// decision log, the outcome log and the prompt table (records.go), the model
// catalogue with the one cost model (catalogue.go), and the ways data gets in
// and out.
//
// Serving appends DecisionRecord and OutcomeRecord rows with Writer, which
// writes atomically (temporary file, fsync, rename) and stamps every file with
// SchemaVersion. Training and evaluation read a Dataset folder (ReadDataset):
// catalogue.csv, prompts.parquet and one or more outcomes*.parquet files.
// Importers turn outside benchmarks into a Dataset: ImportBenchmark reads the
// benchmark-table layout (prompts.jsonl, quality.csv, output_tokens.csv,
// models.csv) and ImportLong a long table of one row per prompt × model; both
// report malformed rows as "file:line: reason" in an ImportReport rather than
// failing on the first.
//
// Reading checks a file's schema against the Go struct before decoding it
// (CheckSchema), since parquet-go silently yields zero values for columns it
// cannot match. testdata/schemas.golden pins the printed schemas.
package datasets
