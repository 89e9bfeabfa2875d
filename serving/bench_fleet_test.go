package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets/synthetic"
	"switchyard/serving"
	"switchyard/serving/fleet/fleettest"
	"switchyard/serving/loadgen"
	"switchyard/serving/servingtest"
)

// BenchmarkRouteWithRedis is POST /v1/route over loopback without and with
// a fleet's Redis (a real redis-server on loopback, which every decision is
// shared with), the load generator, server and Redis sharing the CPUs:
// closed loop at maximum, then open loop at half of that maximum. It runs
// once whatever b.N is.
func BenchmarkRouteWithRedis(b *testing.B) {
	cat := synthetic.DefaultCatalogue()
	model := benchModel(b, cat)
	body, _ := json.Marshal(map[string]string{"prompt": benchPrompt(1 << 10)})
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("redis=%v", shared), func(b *testing.B) {
			cfg := serving.DefaultConfig()
			cfg.MaxInFlight = 0
			opt := serving.Options{Config: cfg, Load: servingtest.Predictor(model, cat, policy.ScorerONNX, policy.Config{Name: "bench", QualityBar: 0.8})}
			if shared {
				opt.Redis = fleettest.Start(b).URL
			}
			ts := servingtest.Start(b, opt)
			run := func(rate float64) *loadgen.Result {
				res, err := loadgen.Run(context.Background(), loadgen.Config{URL: ts.URL + "/v1/route", Bodies: [][]byte{body}, Connections: 64,
					Rate: rate, Duration: 4 * time.Second, Warmup: time.Second, Timeout: 10 * time.Second})
				require.NoError(b, err)
				require.Zero(b, res.Errors, "transport errors: %s", res)
				return res
			}
			b.ResetTimer()
			for i := 0; i < b.N && i < 1; i++ {
				top := run(0)
				half := run(top.Throughput / 2)
				b.Logf("closed loop: %s", top)
				b.Logf("half of max: %s", half)
				b.ReportMetric(top.Throughput, "route_req/s")
				b.ReportMetric(float64(top.P99.Microseconds()), "max_p99_µs")
				b.ReportMetric(float64(half.P99.Microseconds()), "half_p99_µs")
			}
		})
	}
}
