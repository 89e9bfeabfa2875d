// Package fleet keeps in Redis what the replicas of a Switchyard fleet must
// agree on: the recent decisions that feedback needs (a gateway may send
// feedback through another replica than the one that decided), which of
// them already have their outcome (the first acknowledged outcome wins,
// fleet-wide), and how many outcomes each model has had under a predictor.
// Without it, a server keeps all of this in its own memory.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure the connection and the keys.
type Options struct {
	// URL is redis://[:password@]host:port[/db], or rediss:// for TLS.
	URL string
	// Prefix starts every key; "switchyard:" when empty. Fleets sharing a
	// Redis use different prefixes.
	Prefix string
	// TTL is how long a decision and its outcome are remembered; 48 hours
	// when 0.
	TTL time.Duration
	// Owner names this replica in the claims it holds (its writer id).
	Owner string
	Log   *slog.Logger
}

// Decision is what another replica needs of a decision to take its
// feedback.
type Decision struct {
	Model      string  `json:"m"`
	Propensity float64 `json:"p"`
	Policy     string  `json:"pol"`
	Experiment string  `json:"exp,omitempty"`
	Arm        string  `json:"arm,omitempty"`
	Shadow     string  `json:"sh,omitempty"`
	// Tenant and ExpectedCostUSD, for a tenant with a budget: feedback's
	// actual cost corrects the spend by the difference.
	Tenant          string  `json:"t,omitempty"`
	ExpectedCostUSD float64 `json:"ec,omitempty"`
}

// Answer is a stored outcome as repeated feedback is answered with it.
type Answer struct {
	Quality float64 `json:"q"`
	CostUSD float64 `json:"c"`
}

// ErrPending means another replica holds the claim on a decision's
// outcome and has not stored it yet.
var ErrPending = errors.New("another replica is storing this outcome")

// Redis is the fleet's shared state in one Redis.
type Redis struct {
	c      *redis.Client
	opt    Options
	queue  chan queued
	done   chan struct{}
	wg     sync.WaitGroup
	failed atomic.Pointer[error] // the last error talking to Redis, nil while it answers
	drops  atomic.Int64
}

type queued struct {
	id string
	d  []byte
}

// Open connects to Redis. A Redis that does not answer yet is not an
// error: Health reports it until it does (a replica starts, degraded,
// while Redis restarts); a URL that cannot be used is.
func Open(ctx context.Context, opt Options) (*Redis, error) {
	ro, err := redis.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	ro.MaxRetries = 1
	if opt.Prefix == "" {
		opt.Prefix = "switchyard:"
	}
	if opt.TTL <= 0 {
		opt.TTL = 48 * time.Hour
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	r := &Redis{c: redis.NewClient(ro), opt: opt, queue: make(chan queued, 1<<16), done: make(chan struct{})}
	if err := r.note(r.c.Ping(ctx).Err()); err != nil {
		opt.Log.Warn("fleet: redis does not answer yet; serving from this replica's own state until it does", "addr", ro.Addr, "err", err)
	}
	r.wg.Add(1)
	go r.writeDecisions()
	return r, nil
}

func (r *Redis) key(kind, id string) string { return r.opt.Prefix + kind + ":" + id }

// note records how the last call to Redis went, for Health.
func (r *Redis) note(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		r.failed.Store(nil)
		return err
	}
	r.failed.Store(&err)
	return err
}

// Health is nil while Redis answers, and the last error otherwise.
func (r *Redis) Health() error {
	if p := r.failed.Load(); p != nil {
		return fmt.Errorf("redis unreachable: %w", *p)
	}
	return nil
}

// Dropped counts decisions that were not shared: the queue was full, or
// Redis did not answer for longer than maxUnshared decisions (feedback for
// them is taken only by the deciding replica).
func (r *Redis) Dropped() int64 { return r.drops.Load() }

// PutDecision shares a decision. It returns at once: decisions are written
// in batches (at most a millisecond apart), so that routing does not wait
// for Redis; Decision waits that long for one not yet visible.
func (r *Redis) PutDecision(id string, d Decision) {
	b, _ := json.Marshal(d)
	select {
	case r.queue <- queued{id: id, d: b}:
	default:
		r.drops.Add(1)
	}
}

// maxUnshared bounds the decisions kept for sharing while Redis does not
// answer; beyond it the oldest are dropped (counted in Dropped).
const maxUnshared = 1 << 16

// writeDecisions writes queued decisions in pipelined batches until Close.
// While Redis does not answer, the batch is kept (up to maxUnshared) and
// retried every 200 ms, so the decisions made during an outage are shared
// when it ends.
func (r *Redis) writeDecisions() {
	defer r.wg.Done()
	var batch []queued
	for {
		if len(batch) == 0 {
			select {
			case q := <-r.queue:
				batch = append(batch, q)
			case <-r.done:
				r.final(batch)
				return
			}
		}
	fill:
		for len(batch) < maxUnshared {
			select {
			case q := <-r.queue:
				batch = append(batch, q)
			default:
				break fill
			}
		}
		if r.flush(batch) == nil {
			batch = batch[:0]
			continue
		}
		if n := len(batch) - maxUnshared/2; len(batch) >= maxUnshared {
			r.drops.Add(int64(n))
			batch = append(batch[:0], batch[n:]...)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-r.done:
			r.final(batch)
			return
		}
	}
}

// final writes, once, what is left at Close: the batch and the queue.
func (r *Redis) final(batch []queued) {
	for {
		select {
		case q := <-r.queue:
			batch = append(batch, q)
			continue
		default:
		}
		break
	}
	if err := r.flush(batch); err != nil {
		r.drops.Add(int64(len(batch)))
	}
}

// flush writes a batch, 512 decisions a pipeline.
func (r *Redis) flush(batch []queued) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for start := 0; start < len(batch); start += 512 {
		part := batch[start:min(start+512, len(batch))]
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, q := range part {
				p.Set(ctx, r.key("d", q.id), q.d, r.opt.TTL)
			}
			return nil
		})
		if r.note(err) != nil {
			r.opt.Log.Warn("fleet: decisions not shared yet; retrying", "count", len(batch)-start, "err", err)
			return err
		}
	}
	return nil
}

// Offer shares decisions known from the logs at start (those a replica
// killed before it shared them, say) without replacing what is shared.
func (r *Redis) Offer(ctx context.Context, ids []string, ds []Decision) error {
	for start := 0; start < len(ids); start += 512 {
		end := min(start+512, len(ids))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				b, _ := json.Marshal(ds[i])
				p.SetNX(ctx, r.key("d", ids[i]), b, r.opt.TTL)
			}
			return nil
		})
		if r.note(err) != nil {
			return err
		}
	}
	return nil
}

// Decision returns a decision shared by any replica, waiting up to wait
// for one not yet visible. ok is false when no replica shared it.
func (r *Redis) Decision(ctx context.Context, id string, wait time.Duration) (d Decision, ok bool, err error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := r.c.Get(ctx, r.key("d", id)).Bytes()
		if r.note(err) == nil {
			return d, true, json.Unmarshal(b, &d)
		}
		if !errors.Is(err, redis.Nil) {
			return d, false, err
		}
		if time.Now().After(deadline) {
			return d, false, nil
		}
		select {
		case <-ctx.Done():
			return d, false, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// claimScript takes the claim on an outcome (KEYS[1]) for ARGV[1] unless
// the key holds a claim or an answer, which it returns.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], 'claim:' .. ARGV[1], 'PX', ARGV[2])
return false`)

// releaseScript drops ARGV[1]'s claim on KEYS[1], and nothing else.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'claim:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// settleScript stores the answer ARGV[2] (for ARGV[3] ms) under KEYS[1]
// unless another answer, or another replica's claim, is there: 1 when
// stored, 2 when the same answer is there already, 0 otherwise.
var settleScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[2] then return 2 end
if v and v ~= 'claim:' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// claimTTL bounds how long a claim outlives a replica that died holding it.
const claimTTL = 10 * time.Second

// Claim takes the fleet-wide claim to store the outcome under key (a
// decision id, or its shadow slot). It returns the stored answer when
// there is one (the caller answers with it), ErrPending while another
// replica holds the claim, and nil, nil when the claim is the caller's: it
// then stores the outcome and calls Settle, or Release when it could not.
func (r *Redis) Claim(ctx context.Context, key string) (*Answer, error) {
	v, err := claimScript.Run(ctx, r.c, []string{r.key("o", key)}, r.opt.Owner, claimTTL.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		r.note(nil)
		return nil, nil
	}
	if r.note(err) != nil {
		return nil, err
	}
	if len(v) >= 6 && v[:6] == "claim:" {
		return nil, ErrPending
	}
	var a Answer
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return nil, fmt.Errorf("fleet: outcome of %s: %w", key, err)
	}
	return &a, nil
}

// Settle stores the answer of a claimed outcome, and counts the outcome of
// model under each predictor version. With onlyNew, used to reconcile
// outcomes stored while Redis was unreachable or before a restart, the
// answer is stored only where no other answer or other replica's claim is
// (this replica's own claim, left by a kill, is replaced), and false says
// it was not.
func (r *Redis) Settle(ctx context.Context, key string, a Answer, model string, versions []string, onlyNew bool) (bool, error) {
	b, _ := json.Marshal(a)
	var err error
	if onlyNew {
		var n int64
		n, err = settleScript.Run(ctx, r.c, []string{r.key("o", key)}, r.opt.Owner, b, r.opt.TTL.Milliseconds()).Int64()
		if r.note(err) != nil {
			return false, err
		}
		switch n {
		case 0:
			return false, nil
		case 2:
			return true, nil // stored and counted before
		}
	} else if err = r.note(r.c.Set(ctx, r.key("o", key), b, r.opt.TTL).Err()); err != nil {
		return false, err
	}
	return true, r.note(r.count(ctx, model, versions))
}

func (r *Redis) count(ctx context.Context, model string, versions []string) error {
	if model == "" || len(versions) == 0 {
		return nil
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, v := range versions {
			p.HIncrBy(ctx, r.key("n", v), model, 1)
		}
		return nil
	})
	return err
}

// Release gives up the caller's claim on key (the outcome was not stored).
func (r *Redis) Release(ctx context.Context, key string) error {
	return r.note(releaseScript.Run(ctx, r.c, []string{r.key("o", key)}, r.opt.Owner).Err())
}

// Observations are the outcomes per model counted under a predictor
// version, fleet-wide.
func (r *Redis) Observations(ctx context.Context, version string) (map[string]int64, error) {
	m, err := r.c.HGetAll(ctx, r.key("n", version)).Result()
	if r.note(err) != nil {
		return nil, err
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fleet: observations of %s under %s: %w", k, version, err)
		}
		out[k] = n
	}
	return out, nil
}

// SeedObservations sets the counts of a predictor version unless a replica
// set them before (they are the outcomes stored after the predictor's
// data, which every replica reading the shared log root finds alike).
func (r *Redis) SeedObservations(ctx context.Context, version string, counts map[string]int64) error {
	args := make([]any, 0, 2*len(counts))
	for m, n := range counts {
		args = append(args, m, n)
	}
	if len(args) == 0 {
		return nil
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for m, n := range counts {
			p.HSetNX(ctx, r.key("n", version), m, n)
		}
		return nil
	})
	return r.note(err)
}

// Close writes the decisions still queued (once, if Redis answers) and
// closes the connection.
func (r *Redis) Close() error {
	close(r.done)
	r.wg.Wait()
	return r.c.Close()
}
