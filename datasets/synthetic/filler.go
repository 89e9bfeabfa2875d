package synthetic

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// filler fills prompt templates with random entities and numbers. Some
// placeholders are sticky within one prompt (the same product or language is
// mentioned consistently); reset starts a new prompt.
type filler struct {
	rng    *rand.Rand
	sticky map[string]string
	lang   langSpec
	sb     strings.Builder
}

func newFiller(rng *rand.Rand) *filler {
	return &filler{rng: rng, sticky: make(map[string]string, 8)}
}

// reset forgets the sticky values of the previous prompt.
func (f *filler) reset() {
	clear(f.sticky)
	f.lang = languages[f.rng.IntN(len(languages))]
}

func (f *filler) pick(xs []string) string { return xs[f.rng.IntN(len(xs))] }

// between returns a uniform integer in [lo, hi].
func (f *filler) between(lo, hi int) int { return lo + f.rng.IntN(hi-lo+1) }

func (f *filler) chance(p float64) bool { return f.rng.Float64() < p }

// maybe returns, with probability p, one of options with its placeholders
// filled in, and "" otherwise.
func (f *filler) maybe(p float64, options []string) string {
	if !f.chance(p) {
		return ""
	}
	return f.expand(f.pick(options))
}

// pickN returns n distinct elements of xs in random order (all of xs when n
// is larger).
func (f *filler) pickN(xs []string, n int) []string {
	if n > len(xs) {
		n = len(xs)
	}
	idx := f.rng.Perm(len(xs))[:n]
	out := make([]string, n)
	for i, j := range idx {
		out[i] = xs[j]
	}
	return out
}

func (f *filler) product() string { return f.pick(namePrefixes) + " " + f.pick(productKinds) }

func (f *filler) company() string { return f.pick(namePrefixes) + " " + f.pick(companyKinds) }

func (f *filler) person() string { return f.pick(firstNames) + " " + f.pick(lastNames) }

func (f *filler) money() string {
	switch f.rng.IntN(3) {
	case 0:
		return strconv.Itoa(f.between(5, 999))
	case 1:
		return fmt.Sprintf("%d,%03d", f.between(1, 99), f.between(0, 999))
	default:
		return fmt.Sprintf("%d.%d million", f.between(1, 480), f.between(0, 9))
	}
}

func (f *filler) date() string {
	return fmt.Sprintf("%d %s %d", f.between(1, 28), f.pick(months), f.between(2021, 2025))
}

func (f *filler) clock() string { return fmt.Sprintf("%02d:%02d", f.between(0, 23), f.between(0, 59)) }

func (f *filler) version() string {
	return fmt.Sprintf("%d.%d.%d", f.between(1, 9), f.between(0, 24), f.between(0, 12))
}

func (f *filler) errorCode() string {
	return fmt.Sprintf("%s-%d", f.pick([]string{"ERR", "E", "SYNC", "PAY", "AUTH", "IO"}), f.between(100, 9999))
}

func (f *filler) orderID() string {
	return fmt.Sprintf("%c%c-%d", 'A'+rune(f.rng.IntN(26)), 'A'+rune(f.rng.IntN(26)), f.between(10000, 999999))
}

// value returns a fresh value for a placeholder key.
func (f *filler) value(key string) string {
	switch key {
	case "product":
		return f.product()
	case "company":
		return f.company()
	case "person":
		return f.person()
	case "lang":
		return f.lang.Name
	case "lib":
		return f.pick(f.lang.Libs)
	case "testfw":
		return f.lang.Test
	case "n":
		return strconv.Itoa(f.between(2, 60))
	case "small":
		return strconv.Itoa(f.between(2, 9))
	case "big":
		return strconv.Itoa(f.between(100, 50000))
	case "pct":
		return strconv.Itoa(f.between(2, 95)) + "%"
	case "money":
		return f.money()
	case "date":
		return f.date()
	case "time":
		return f.clock()
	case "version":
		return f.version()
	case "errcode":
		return f.errorCode()
	case "order":
		return f.orderID()
	}
	if pool, ok := placeholderPools[key]; ok {
		return f.pick(pool)
	}
	return "{" + key + "}"
}

// expand replaces {key} placeholders in tpl. Keys ending in "2" or "3" name
// a second or third independent sticky value of the same kind ({product2}).
func (f *filler) expand(tpl string) string {
	if !strings.Contains(tpl, "{") {
		return tpl
	}
	f.sb.Reset()
	writeSlots(&f.sb, tpl, func(key string) (string, bool) { return f.stickyValue(key), true })
	return f.sb.String()
}

// writeSlots writes tpl to b with each {slot} replaced by its value, in one
// pass from left to right, so that inserted text is never scanned again. A
// slot without a value (ok false) is written as it stands; so is the rest of
// tpl after a "{" that is never closed.
func writeSlots(b *strings.Builder, tpl string, value func(slot string) (v string, ok bool)) {
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			b.WriteString(tpl)
			return
		}
		b.WriteString(tpl[:i])
		if v, ok := value(tpl[i+1 : i+j]); ok {
			b.WriteString(v)
		} else {
			b.WriteString(tpl[i : i+j+1])
		}
		tpl = tpl[i+j+1:]
	}
}

// stickyValue returns the value of key in the current prompt, drawing it on
// first use. Numbers, dates and identifiers ({n}, {pct}, {date}, ...) are
// fresh on every use.
func (f *filler) stickyValue(key string) string {
	base := strings.TrimRight(key, "23")
	switch base {
	case "n", "small", "big", "pct", "money", "date", "time", "version", "errcode", "order", "ident", "word", "field":
		return f.value(base)
	}
	if v, ok := f.sticky[key]; ok {
		return v
	}
	v := f.value(base)
	for tries := 0; tries < 4 && key != base && f.isTaken(base, v); tries++ {
		v = f.value(base)
	}
	f.sticky[key] = v
	return v
}

// isTaken reports whether v is already the sticky value of base or one of
// its numbered variants, so {product} and {product2} differ.
func (f *filler) isTaken(base, v string) bool {
	for _, k := range []string{base, base + "2", base + "3"} {
		if f.sticky[k] == v {
			return true
		}
	}
	return false
}

// list formats items as a bullet list, a numbered list or inline text,
// chosen at random, so that prompt layouts vary.
func (f *filler) list(items []string) string {
	if len(items) == 0 {
		return ""
	}
	var b strings.Builder
	switch f.rng.IntN(3) {
	case 0:
		for _, it := range items {
			b.WriteString("- ")
			b.WriteString(it)
			b.WriteString("\n")
		}
	case 1:
		for i, it := range items {
			fmt.Fprintf(&b, "%d. %s\n", i+1, it)
		}
	default:
		b.WriteString(strings.Join(items, " "))
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// fillSlots replaces {name} slots in tpl with the values given as name,
// value pairs, in one pass, so that inserted text is never scanned again.
// Unknown slots are left for expand.
func fillSlots(tpl string, pairs ...string) string {
	var b strings.Builder
	b.Grow(len(tpl) + 256)
	writeSlots(&b, tpl, func(slot string) (string, bool) {
		for k := 0; k+1 < len(pairs); k += 2 {
			if pairs[k] == slot {
				return pairs[k+1], true
			}
		}
		return "", false
	})
	return b.String()
}

// joinOr formats labels as "a, b or c".
func joinOr(labels []string, conj string) string {
	switch len(labels) {
	case 0:
		return ""
	case 1:
		return labels[0]
	}
	return strings.Join(labels[:len(labels)-1], ", ") + " " + conj + " " + labels[len(labels)-1]
}
