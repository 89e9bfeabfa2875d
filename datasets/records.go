package datasets

import "time"

// SchemaVersion is the version of the Parquet log schemas below. It is stored
// in every file's key/value metadata under SchemaVersionKey; readers refuse a
// file whose version they do not know.
const SchemaVersion = "3"

// SchemaVersionKey is the Parquet key/value metadata key that carries SchemaVersion.
const SchemaVersionKey = "switchyard.schema_version"

// Source says where an observed outcome came from.
const (
	SourceOnline    = "online"    // feedback from a gateway on served traffic
	SourceBenchmark = "benchmark" // offline, full-information benchmark
	SourceShadow    = "shadow"    // a shadow copy of a request, never served
)

// Candidate is one model considered by a routing decision.
type Candidate struct {
	Model            string  `parquet:"model"`
	PredictedQuality float64 `parquet:"predicted_quality"`
	ExpectedCostUSD  float64 `parquet:"expected_cost_usd"`
	// Probability is the policy's probability of choosing this candidate
	// (exploration included), so the whole action distribution can be
	// recomputed from the log.
	Probability float64 `parquet:"probability"`
}

// DecisionRecord is one row of the decision log: one routing decision.
// The same struct is used to write and to read the log.
type DecisionRecord struct {
	DecisionID       string      `parquet:"decision_id"`
	Time             time.Time   `parquet:"time,timestamp(microsecond),optional"` // zero Time is stored as null
	RequestID        string      `parquet:"request_id"`
	PromptID         string      `parquet:"prompt_id"`
	Prompt           string      `parquet:"prompt"`        // empty when prompts are not kept
	PromptSHA256     string      `parquet:"prompt_sha256"` // hex sha256 of the prompt text, always set
	Task             string      `parquet:"task"`
	FeatureSpecID    string      `parquet:"feature_spec_id"`
	PredictorVersion string      `parquet:"predictor_version"`
	Policy           string      `parquet:"policy"`
	PolicyVersion    string      `parquet:"policy_version"`
	QualityBar       float64     `parquet:"quality_bar"`
	Candidates       []Candidate `parquet:"candidates,list"`
	Chosen           string      `parquet:"chosen"`
	Propensity       float64     `parquet:"propensity"`
	Experiment       string      `parquet:"experiment"`
	Arm              string      `parquet:"arm"`
	UnitHash         string      `parquet:"unit_hash"`    // hex SHA-256 prefix of the experiment unit (user, tenant, ...), empty outside experiments
	InputTokens      int64       `parquet:"input_tokens"` // estimated from the prompt
}

// OutcomeRecord is one row of the outcome log: one observed answer quality.
// DecisionID links an online or shadow outcome to its decision; PromptID links
// a benchmark outcome to the prompt table.
type OutcomeRecord struct {
	DecisionID   string    `parquet:"decision_id"`
	PromptID     string    `parquet:"prompt_id"`
	Model        string    `parquet:"model"`
	Quality      float64   `parquet:"quality"`
	InputTokens  int64     `parquet:"input_tokens"`
	OutputTokens int64     `parquet:"output_tokens"`
	CostUSD      float64   `parquet:"cost_usd"`
	LatencyMS    float64   `parquet:"latency_ms"`
	Source       string    `parquet:"source"`
	Time         time.Time `parquet:"time,timestamp(microsecond),optional"` // zero Time (unknown) is stored as null
	Error        string    `parquet:"error"`
}

// PromptRecord is one row of the prompt table that benchmark outcomes refer
// to by PromptID.
type PromptRecord struct {
	PromptID string `parquet:"prompt_id"`
	Prompt   string `parquet:"prompt"`
	Task     string `parquet:"task"`
}
