package datasets_test

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

func TestDrawsAreUniformAcrossSequentialDecisionIDs(t *testing.T) {
	const n = 20000
	var bins [10]int
	for i := 0; i < n; i++ {
		u := datasets.Draw(1, "inst-"+strconv.FormatUint(uint64(i), 36))
		require.True(t, u >= 0 && u < 1)
		bins[int(u*10)]++
	}
	for k, c := range bins {
		assert.InDelta(t, n/10, c, 4*math.Sqrt(n*0.1*0.9), "bin %d", k)
	}
	assert.Equal(t, datasets.Draw(7, "x"), datasets.Draw(7, "x"))
	assert.NotEqual(t, datasets.Draw(7, "x"), datasets.Draw(8, "x"))
}

// The unit draw and the splits rest on the one salted hash: a unit keeps
// its draw, and another salt gives another one.
func TestUnitDrawIsTheSaltedHashOfTheUnit(t *testing.T) {
	assert.Equal(t, datasets.UnitDraw("s", "alice"), datasets.UnitDraw("s", "alice"))
	assert.NotEqual(t, datasets.UnitDraw("s", "alice"), datasets.UnitDraw("t", "alice"))
	assert.NotEqual(t, datasets.SaltedHash("s", "ab"), datasets.SaltedHash("sa", "b"), "the zero byte keeps salt and key apart")
	var in int
	for i := 0; i < 10000; i++ {
		if datasets.UnitDraw("salt", strconv.Itoa(i)) < 0.3 {
			in++
		}
	}
	assert.InDelta(t, 3000, in, 4*math.Sqrt(10000*0.3*0.7))
}
