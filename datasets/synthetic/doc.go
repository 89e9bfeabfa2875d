// Package synthetic generates a seeded, full-information benchmark workload
// for Switchyard: enterprise-style prompts, a catalogue of market-priced
// models, and one outcome (quality, tokens, cost, latency) for every prompt
// and model.
//
// It sits beside the importers of the datasets package: where those read
// real benchmark files, Generate invents one whose answers follow a hidden
// ground truth, so that training, evaluation and experiments can be run and
// checked end to end without any external data.
//
// The ground truth: every model has a skill per task, every prompt a latent
// difficulty that grows with its difficulty level and with features of its
// wording (constraint words, length, code and math content, several
// questions) plus noise, and a model answers acceptably (quality 1) with
// probability sigmoid(scale·(skill − difficulty)), otherwise quality 0.
// Because the difficulty shows in the text, a predictor can learn it from
// the prompt alone. The skills are calibrated so that the frontier model is
// right on about 88% of the traffic mix and the self-hosted one on about
// 48%, with the cheap models close to the frontier on easy classification
// and far behind on hard reasoning and code.
//
// Generation is deterministic: the same Config gives byte-for-byte the same
// workload. All randomness flows from Config.Seed through explicit
// *rand.Rand values.
package synthetic
