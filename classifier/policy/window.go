package policy

import (
	"errors"
	"fmt"
	"strconv"
)

// ContextOverflow says what the rule does with a prompt that fits no
// candidate's context window.
type ContextOverflow string

// Context overflow settings.
const (
	// OverflowReject (the default, also when empty) refuses the request
	// with a *ContextWindowError.
	OverflowReject ContextOverflow = "reject"
	// OverflowLargest routes the request to the candidate with the largest
	// context window (the rule chooses among candidates that share it), on
	// the grounds that the provider may still accept or truncate it.
	OverflowLargest ContextOverflow = "largest"
)

// Validate checks that the setting is empty, OverflowReject or
// OverflowLargest.
func (o ContextOverflow) Validate() error {
	switch o {
	case "", OverflowReject, OverflowLargest:
		return nil
	}
	return fmt.Errorf("context_overflow %q is not a setting (want %q or %q)", string(o), OverflowReject, OverflowLargest)
}

// ErrContextWindow is returned (inside a *ContextWindowError) when a prompt
// fits no candidate's context window.
var ErrContextWindow = errors.New("the prompt fits no candidate's context window")

// ContextWindowError is returned when the request needs more tokens than
// the context window of every candidate. errors.Is reports it as both
// ErrContextWindow and ErrNoCandidate; errors.As gives the numbers. It is
// the caller's fault (a client error), not the router's.
type ContextWindowError struct {
	// TokensNeeded is what the request needs in the window of Model: the
	// estimated input tokens plus Model's expected output tokens.
	TokensNeeded int
	// Window is the largest context window among the candidates, in
	// tokens, and Model the (first) candidate that has it.
	Window int
	Model  string
}

func (e *ContextWindowError) Error() string {
	return fmt.Sprintf("prompt needs about %s tokens; the largest context window among the candidates is %s (%s): shorten the prompt or name a candidate with a larger window",
		thousands(e.TokensNeeded), thousands(e.Window), e.Model)
}

// Unwrap makes the error match ErrContextWindow and ErrNoCandidate.
func (e *ContextWindowError) Unwrap() []error { return []error{ErrContextWindow, ErrNoCandidate} }

// Fits reports whether the request fits the option's context window: the
// window is unknown (0) or at least the tokens the request needs.
func (o Option) Fits() bool { return o.ContextWindow <= 0 || o.TokensNeeded <= o.ContextWindow }

// contextWindowError describes opts, none of which fits, by the one with the
// largest window.
func contextWindowError(opts []Option) *ContextWindowError {
	e := &ContextWindowError{}
	for _, o := range opts {
		if o.ContextWindow > e.Window {
			e.TokensNeeded, e.Window, e.Model = o.TokensNeeded, o.ContextWindow, o.Model
		}
	}
	return e
}

// largestWindowFits returns a copy of opts in which the options with the
// largest context window count as fitting, so that the rule chooses among
// them; the others keep their fit.
func largestWindowFits(opts []Option) []Option {
	top := 0
	for _, o := range opts {
		top = max(top, o.ContextWindow)
	}
	out := make([]Option, len(opts))
	for i, o := range opts {
		if o.ContextWindow == top {
			o.ContextWindow = 0
		}
		out[i] = o
	}
	return out
}

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
