package serving_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/serving"
)

// One configuration format: what calibrate writes (a configuration with one
// policy) is what serve --config reads and what route, calibrate and ope
// read their policy from; the earlier policy-file form still loads in both.
func TestAPolicyFileIsAConfigurationWithOnePolicy(t *testing.T) {
	cfgPath, fc := writeConfig(t, nil)
	dir := filepath.Dir(cfgPath)
	one := &policy.File{Config: policy.Config{Name: "tuned", Version: "bar=0.67", QualityBar: 0.67},
		Predictor: fc.Policies[0].Predictor, Catalogue: fc.Catalogue, Note: "calibrated"}
	written := filepath.Join(dir, "policy.json")
	require.NoError(t, policy.WriteFile(written, one))
	b, err := os.ReadFile(written)
	require.NoError(t, err)
	assert.True(t, policy.IsConfiguration(b), "calibrate writes the configuration format")

	got, err := policy.ReadFile(written)
	require.NoError(t, err)
	assert.Equal(t, "tuned", got.Name)
	assert.Equal(t, filepath.Join(dir, "predictor.onnx"), got.Predictor)
	rt, err := serving.ReadConfig(written, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	assert.Equal(t, "tuned", rt.Default.Config().Name)
	rt.Close()

	// the default policy of a larger configuration is what the offline commands take
	def, err := policy.ReadFile(cfgPath)
	require.NoError(t, err)
	assert.Equal(t, "control", def.Name)
	assert.Equal(t, 0.9, def.QualityBar)

	// the earlier form: one policy's fields at the top
	old := filepath.Join(dir, "old.json")
	require.NoError(t, os.WriteFile(old, []byte(`{"name":"legacy","version":"1","quality_bar":0.5,"predictor":"predictor.onnx","catalogue":"catalogue.csv"}`), 0o644))
	legacy, err := policy.ReadFile(old)
	require.NoError(t, err)
	assert.Equal(t, "legacy", legacy.Name)
	rt, err = serving.ReadConfig(old, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	assert.Equal(t, 0.5, rt.Default.Config().QualityBar)
	rt.Close()

	// both readers take the same policy, or refuse alike
	nodef := filepath.Join(dir, "nodefault.json")
	require.NoError(t, os.WriteFile(nodef, []byte(`{"catalogue":"catalogue.csv","default_policy":"gone","policies":[{"name":"x","quality_bar":0.5,"predictor":"predictor.onnx"}]}`), 0o644))
	_, err = policy.ReadFile(nodef)
	require.ErrorContains(t, err, `default policy "gone" is not defined`)
	_, err = serving.ReadConfig(nodef, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.ErrorContains(t, err, `default policy "gone" is not defined`)

	// one validation for both forms
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"catalogue":"catalogue.csv","policies":[{"name":"x","quality_bar":1.5,"predictor":"predictor.onnx"}]}`), 0o644))
	_, err = policy.ReadFile(bad)
	require.ErrorContains(t, err, "quality_bar 1.5 outside [0,1]")
	_, err = serving.ReadConfig(bad, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.ErrorContains(t, err, "quality_bar 1.5 outside [0,1]")
}
