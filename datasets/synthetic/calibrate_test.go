package synthetic

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// calibrationTargets is the expected accuracy of each model on each task
// (taskMix order: classification, summarization, rag, code, reasoning,
// creative) that modelProfiles' skills were fitted to. Weighted by the
// traffic mix they give about 48%, 63%, 64%, 70%, 82%, 84% and 88% overall.
var calibrationTargets = map[string][6]float64{
	"open-8b-selfhosted": {0.80, 0.46, 0.33, 0.16, 0.07, 0.34},
	"flash":              {0.86, 0.76, 0.55, 0.30, 0.18, 0.48},
	"mini":               {0.87, 0.64, 0.58, 0.40, 0.22, 0.52},
	"haiku-class":        {0.89, 0.73, 0.66, 0.50, 0.28, 0.62},
	"gpt-4o-class":       {0.94, 0.83, 0.84, 0.66, 0.54, 0.78},
	"sonnet-class":       {0.93, 0.85, 0.82, 0.80, 0.52, 0.83},
	"opus-class":         {0.95, 0.90, 0.88, 0.81, 0.70, 0.88},
}

// calibrationSample is the hidden truth of a large reference workload.
func calibrationSample(t *testing.T, seed int64, prompts int) []latent {
	t.Helper()
	_, truth, err := generate(Config{Seed: seed, Prompts: prompts})
	require.NoError(t, err)
	return truth
}

// expectedAccuracy is the mean probability of an acceptable answer per task
// for a model with the given skills.
func expectedAccuracy(truth []latent, skill [6]float64) [6]float64 {
	var sum, n [6]float64
	for _, l := range truth {
		sum[l.task] += pAcceptable(skill[l.task], l.difficulty)
		n[l.task]++
	}
	for i := range sum {
		if n[i] > 0 {
			sum[i] /= n[i]
		}
	}
	return sum
}

func TestCalibration_SkillsGiveTargetAccuracyPerTask(t *testing.T) {
	// Another seed than the one the skills were fitted on.
	truth := calibrationSample(t, 31, 10000)
	for _, m := range modelProfiles {
		t.Run(m.price.Name, func(t *testing.T) {
			want, ok := calibrationTargets[m.price.Name]
			require.True(t, ok, "no calibration target")
			got := expectedAccuracy(truth, m.skill)
			for i, task := range taskMix {
				assert.InDelta(t, want[i], got[i], 0.02, "task %s", task.name)
			}
		})
	}
}

// TestCalibration_FitSkills prints skills fitted by bisection to
// calibrationTargets. Run it after changing the prompt templates or the
// difficulty model, and paste the result into modelProfiles:
//
//	SYNTHETIC_CALIBRATE=1 go test -run FitSkills -v ./datasets/synthetic/
func TestCalibration_FitSkills(t *testing.T) {
	if os.Getenv("SYNTHETIC_CALIBRATE") == "" {
		t.Skip("set SYNTHETIC_CALIBRATE=1 to fit skills")
	}
	truth := calibrationSample(t, 20250106, 40000)
	var b strings.Builder
	for _, m := range modelProfiles {
		want := calibrationTargets[m.price.Name]
		var skill [6]float64
		for i := range taskMix {
			lo, hi := -10.0, 20.0
			for iter := 0; iter < 60; iter++ {
				mid := (lo + hi) / 2
				skill[i] = mid
				if expectedAccuracy(truth, skill)[i] < want[i] {
					lo = mid
				} else {
					hi = mid
				}
			}
			skill[i] = (lo + hi) / 2
		}
		fmt.Fprintf(&b, "%-20s skill: [6]float64{%.2f, %.2f, %.2f, %.2f, %.2f, %.2f},\n", m.price.Name,
			skill[0], skill[1], skill[2], skill[3], skill[4], skill[5])
	}
	t.Log("\n" + b.String())
}
