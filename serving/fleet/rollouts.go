package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"switchyard/experiments/rollout"
)

// rolloutTTL is how long a rollout's progress outlives its last outcome.
const rolloutTTL = 90 * 24 * time.Hour

// Rollouts is the store of rollout progress (rollout.Store) in the
// fleet's Redis: per rollout a hash of its stage and outcome sums and a
// list of its transitions. Outcomes are added and stages moved by Lua
// scripts, so each batch counts once and each transition happens once.
type Rollouts struct {
	r     *Redis
	batch string // names this process's batches of outcomes
}

// Rollouts returns the fleet's rollout store.
func (r *Redis) Rollouts() (*Rollouts, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("fleet: rollout batch id: %w", err)
	}
	return &Rollouts{r: r, batch: "seq." + r.opt.Owner + "." + hex.EncodeToString(b)}, nil
}

func (s *Rollouts) keys(key string) []string {
	k := s.r.key("rollout", "{"+key+"}") // one hash slot for the hash and its list
	return []string{k, k + ":transitions"}
}

// The sums' fields in the hash: t. for treatment, c. for control.
var sumFields = [...]string{"n", "q", "qq", "c", "cc", "err"}

func sumValues(s rollout.Sums) [6]float64 {
	return [6]float64{float64(s.N), s.Q, s.QQ, s.C, s.CC, s.Err}
}

var addScript = redis.NewScript(`
local seq = tonumber(ARGV[2])
if seq > 0 and seq > tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  for i = 4, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i+1]) end
end
redis.call('HSETNX', KEYS[1], 'stage', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}`)

var moveScript = redis.NewScript(`
if tonumber(redis.call('HGET', KEYS[1], 'stage') or '0') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'stage', ARGV[2], 'start', redis.call('HGET', KEYS[1], 't.n') or '0')
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}`)

var restoreScript = redis.NewScript(`
if redis.call('LLEN', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  local k = tonumber(ARGV[3])
  for i = 4, 3 + 2*k, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
  for i = 4 + 2*k, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}`)

var fixScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])`)

// Add adds a batch of outcomes (once per seq) and returns the progress.
func (s *Rollouts) Add(ctx context.Context, key string, seq int64, delta [2]rollout.Sums) (rollout.Progress, error) {
	args := []any{s.batch, seq, rolloutTTL.Milliseconds()}
	for i, arm := range []string{"t.", "c."} {
		for j, v := range sumValues(delta[i]) {
			if v != 0 {
				args = append(args, arm+sumFields[j], strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
	}
	v, err := addScript.Run(ctx, s.r.c, s.keys(key), args...).Result()
	if s.r.note(err) != nil {
		return rollout.Progress{}, err
	}
	return progress(key, v)
}

// Move makes transition t from stage from to stage to if the rollout is
// still at from, and returns the progress.
func (s *Rollouts) Move(ctx context.Context, key string, from, to int, t rollout.Transition) (rollout.Progress, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return rollout.Progress{}, fmt.Errorf("fleet: rollout %s: %w", key, err)
	}
	v, err := moveScript.Run(ctx, s.r.c, s.keys(key), from, to, b, rolloutTTL.Milliseconds()).Result()
	if s.r.note(err) != nil {
		return rollout.Progress{}, err
	}
	return progress(key, v)
}

// Fix sets a guardrail's mixing variance unless one is set, and returns
// the one set.
func (s *Rollouts) Fix(ctx context.Context, key string, guardrail int, tau2 float64) (float64, error) {
	v, err := fixScript.Run(ctx, s.r.c, s.keys(key)[:1], "tau2."+strconv.Itoa(guardrail), strconv.FormatFloat(tau2, 'g', -1, 64)).Text()
	if s.r.note(err) != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("fleet: rollout %s: guardrail %d: %w", key, guardrail, err)
	}
	return f, nil
}

// Restore puts p back when Redis holds fewer transitions than p.
func (s *Rollouts) Restore(ctx context.Context, key string, p rollout.Progress) (rollout.Progress, error) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	fields := []string{"stage", strconv.Itoa(p.Stage), "start", strconv.FormatInt(p.StageStart, 10)}
	for i, arm := range []string{"t.", "c."} {
		for j, v := range sumValues(p.Arms[i]) {
			fields = append(fields, arm+sumFields[j], f(v))
		}
	}
	for g, v := range p.Tau2 {
		if v != 0 {
			fields = append(fields, "tau2."+strconv.Itoa(g), f(v))
		}
	}
	args := []any{len(p.Transitions), rolloutTTL.Milliseconds(), len(fields) / 2}
	for _, x := range fields {
		args = append(args, x)
	}
	for _, t := range p.Transitions {
		b, err := json.Marshal(t)
		if err != nil {
			return rollout.Progress{}, fmt.Errorf("fleet: rollout %s: %w", key, err)
		}
		args = append(args, b)
	}
	v, err := restoreScript.Run(ctx, s.r.c, s.keys(key), args...).Result()
	if s.r.note(err) != nil {
		return rollout.Progress{}, err
	}
	return progress(key, v)
}

// progress reads the scripts' answer: the hash's fields and values, and
// the transitions.
func progress(key string, v any) (rollout.Progress, error) {
	var p rollout.Progress
	bad := func(what string, err error) (rollout.Progress, error) {
		return rollout.Progress{}, fmt.Errorf("fleet: rollout %s: %s: %v", key, what, err)
	}
	parts, ok := v.([]any)
	if !ok || len(parts) != 2 {
		return bad("answer", fmt.Errorf("unexpected %T", v))
	}
	fields, _ := parts[0].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		f, err := strconv.ParseFloat(val, 64)
		if err != nil && !strings.HasPrefix(name, "seq.") {
			return bad(name, err)
		}
		switch {
		case name == "stage":
			p.Stage = int(f)
		case name == "start":
			p.StageStart = int64(f)
		case strings.HasPrefix(name, "tau2."):
			g, err := strconv.Atoi(name[len("tau2."):])
			if err != nil || g < 0 || g > 64 {
				return bad(name, fmt.Errorf("not a guardrail"))
			}
			for len(p.Tau2) <= g {
				p.Tau2 = append(p.Tau2, 0)
			}
			p.Tau2[g] = f
		case len(name) > 2 && (name[:2] == "t." || name[:2] == "c."):
			arm := &p.Arms[0]
			if name[0] == 'c' {
				arm = &p.Arms[1]
			}
			switch name[2:] {
			case "n":
				arm.N = int64(f)
			case "q":
				arm.Q = f
			case "qq":
				arm.QQ = f
			case "c":
				arm.C = f
			case "cc":
				arm.CC = f
			case "err":
				arm.Err = f
			}
		}
	}
	list, _ := parts[1].([]any)
	for _, item := range list {
		s, _ := item.(string)
		var t rollout.Transition
		if err := json.Unmarshal([]byte(s), &t); err != nil {
			return bad("transition", err)
		}
		p.Transitions = append(p.Transitions, t)
	}
	return p, nil
}
