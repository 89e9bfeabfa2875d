package datasets

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecisionWALRoundTripsAndRefusesDamagedRecords(t *testing.T) {
	for _, want := range normaliseDecisions(sampleDecisions()) {
		t.Run(want.DecisionID, func(t *testing.T) {
			b := want.AppendWAL(nil)
			var got DecisionRecord
			require.NoError(t, got.DecodeWAL(b))
			assert.Equal(t, want, normaliseDecisions([]DecisionRecord{got})[0])
			for n := range len(b) {
				assert.Error(t, new(DecisionRecord).DecodeWAL(b[:n]), "cut to %d of %d bytes", n, len(b))
			}
			assert.ErrorContains(t, new(DecisionRecord).DecodeWAL(append(b, 0)), "1 bytes left over")
			assert.ErrorContains(t, new(DecisionRecord).DecodeWAL(append([]byte{9}, b[1:]...)), "unknown encoding version 9")
		})
	}
}
