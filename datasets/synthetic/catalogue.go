package synthetic

import (
	"fmt"

	"switchyard/datasets"
)

// syntheticNote is stored in ModelPrice.Notes of every generated model.
const syntheticNote = "synthetic model for the generated benchmark; price modelled on a market tier, not a real endpoint"

// modelProfile is one model of the synthetic catalogue: its list price and
// its hidden behaviour.
type modelProfile struct {
	price     datasets.ModelPrice
	skill     [6]float64 // per task, in taskMix order, in difficulty logits
	verbosity float64    // multiplies the answer length
	tokPerSec float64    // decoding speed
	ttftMS    float64    // time to first token
}

// modelProfiles is the catalogue, cheapest first. Skills were calibrated (see
// calibrate_test.go) so that, on the default traffic mix, overall accuracy is
// about: open 48%, flash 63%, mini 64%, haiku 70%, gpt-4o 82%, sonnet 84%,
// opus 88%. The tiers are not strictly ordered on every task: flash is the
// best cheap model at summarisation, sonnet matches opus on code and
// gpt-4o-class beats sonnet on RAG and classification.
var modelProfiles = []modelProfile{
	{price: datasets.ModelPrice{Name: "open-8b-selfhosted", InputUSDPerMTok: 0.05, OutputUSDPerMTok: 0.05, ContextWindow: 32768},
		skill: [6]float64{2.81, 1.48, 1.04, -0.51, -1.43, -0.01}, verbosity: 1.05, tokPerSec: 120, ttftMS: 150},
	{price: datasets.ModelPrice{Name: "flash", InputUSDPerMTok: 0.10, OutputUSDPerMTok: 0.40, ContextWindow: 1000000},
		skill: [6]float64{3.38, 3.18, 2.42, 0.55, -0.30, 0.69}, verbosity: 0.95, tokPerSec: 180, ttftMS: 300},
	{price: datasets.ModelPrice{Name: "mini", InputUSDPerMTok: 0.15, OutputUSDPerMTok: 0.60, ContextWindow: 128000},
		skill: [6]float64{3.49, 2.43, 2.62, 1.24, -0.01, 0.89}, verbosity: 1.0, tokPerSec: 100, ttftMS: 350},
	{price: datasets.ModelPrice{Name: "haiku-class", InputUSDPerMTok: 0.80, OutputUSDPerMTok: 4.00, ContextWindow: 200000},
		skill: [6]float64{3.72, 2.98, 3.21, 1.96, 0.39, 1.42}, verbosity: 0.9, tokPerSec: 120, ttftMS: 450},
	{price: datasets.ModelPrice{Name: "gpt-4o-class", InputUSDPerMTok: 2.50, OutputUSDPerMTok: 10.00, ContextWindow: 128000},
		skill: [6]float64{4.50, 3.73, 4.94, 3.16, 1.90, 2.42}, verbosity: 1.0, tokPerSec: 80, ttftMS: 450},
	{price: datasets.ModelPrice{Name: "sonnet-class", InputUSDPerMTok: 3.00, OutputUSDPerMTok: 15.00, ContextWindow: 200000},
		skill: [6]float64{4.31, 3.91, 4.70, 4.29, 1.79, 2.82}, verbosity: 1.1, tokPerSec: 70, ttftMS: 600},
	{price: datasets.ModelPrice{Name: "opus-class", InputUSDPerMTok: 15.00, OutputUSDPerMTok: 75.00, ContextWindow: 200000},
		skill: [6]float64{4.70, 4.46, 5.47, 4.38, 2.89, 3.31}, verbosity: 1.2, tokPerSec: 35, ttftMS: 1200},
}

// DefaultCatalogue returns the seven synthetic models, cheapest first, with
// prices modelled on today's market tiers (USD per million tokens):
// open-8b-selfhosted 0.05/0.05, flash 0.10/0.40, mini 0.15/0.60,
// haiku-class 0.80/4, gpt-4o-class 2.50/10, sonnet-class 3/15,
// opus-class 15/75.
func DefaultCatalogue() *datasets.Catalogue {
	models := make([]datasets.ModelPrice, len(modelProfiles))
	for i, p := range modelProfiles {
		models[i] = p.price
		models[i].Notes = syntheticNote
	}
	c, err := datasets.NewCatalogue(models)
	if err != nil {
		// The table above is static and checked by the tests.
		panic(fmt.Sprintf("synthetic: invalid built-in catalogue: %v", err))
	}
	return c
}
