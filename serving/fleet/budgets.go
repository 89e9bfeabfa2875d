package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Budgets is the store of tenants' spend (budget.Store) in the fleet's
// Redis: one number per tenant and period, added to in batches by a Lua
// script that counts each batch once, and charged by another that charges
// only below a limit.
type Budgets struct {
	r     *Redis
	batch string // names this process's batches
}

// Budgets returns the fleet's spend store.
func (r *Redis) Budgets() (*Budgets, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("fleet: budget batch id: %w", err)
	}
	return &Budgets{r: r, batch: r.key("budget-batch", r.opt.Owner+"."+hex.EncodeToString(b))}, nil
}

var spendScript = redis.NewScript(`
local seq = tonumber(ARGV[1])
local add = seq > 0 and seq > tonumber(redis.call('GET', KEYS[1]) or '0')
if add then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
local out = {}
for i = 2, #KEYS do
  if add and tonumber(ARGV[i+1]) ~= 0 then
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[i+1])
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
  out[i-1] = redis.call('GET', KEYS[i]) or '0'
end
return out`)

var chargeScript = redis.NewScript(`
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent >= tonumber(ARGV[2]) then return {0, tostring(spent)} end
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, v}`)

// Add adds a batch of spend once per seq and returns the spend of its keys.
func (b *Budgets) Add(ctx context.Context, seq int64, delta map[string]float64, ttl time.Duration) (map[string]float64, error) {
	keys := []string{b.batch}
	args := []any{seq, ttl.Milliseconds()}
	names := make([]string, 0, len(delta))
	for k, v := range delta {
		names = append(names, k)
		keys = append(keys, b.r.key("spend", k))
		args = append(args, strconv.FormatFloat(v, 'g', -1, 64))
	}
	vals, err := spendScript.Run(ctx, b.r.c, keys, args...).StringSlice()
	if b.r.note(err) != nil {
		return nil, err
	}
	out := make(map[string]float64, len(names))
	for i, k := range names {
		f, err := strconv.ParseFloat(vals[i], 64)
		if err != nil {
			return nil, fmt.Errorf("fleet: spend of %s: %w", k, err)
		}
		out[k] = f
	}
	return out, nil
}

// Charge adds cost to key's spend if it is below limit.
func (b *Budgets) Charge(ctx context.Context, key string, cost, limit float64, ttl time.Duration) (float64, bool, error) {
	v, err := chargeScript.Run(ctx, b.r.c, []string{b.r.key("spend", key)},
		strconv.FormatFloat(cost, 'g', -1, 64), strconv.FormatFloat(limit, 'g', -1, 64), ttl.Milliseconds()).Slice()
	if b.r.note(err) != nil {
		return 0, false, err
	}
	if len(v) != 2 {
		return 0, false, fmt.Errorf("fleet: charge %s: unexpected answer %v", key, v)
	}
	ok, _ := v[0].(int64)
	s, _ := v[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, fmt.Errorf("fleet: spend of %s: %w", key, err)
	}
	return f, ok == 1, nil
}
