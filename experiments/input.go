package experiments

import (
	"switchyard/datasets"
	"switchyard/features"
)

// inputOf rebuilds the router input of a logged decision. The decision log
// keeps the prompt text (chat turns joined by newlines) and the task label.
func inputOf(d datasets.DecisionRecord) features.Input {
	return features.Input{Prompt: d.Prompt, Task: d.Task}
}
