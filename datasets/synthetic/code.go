package synthetic

import (
	"fmt"
	"strings"
)

// Code tasks by tier: tier 1 are one-liners, tier 4 are small systems.
var codeTasks = [4][]string{
	{
		"reverses a string",
		"returns the largest of {small} numbers",
		"checks whether a number is even",
		"converts Celsius to Fahrenheit",
		"counts the vowels in a word",
		"joins a list of names with commas",
		"returns the first {small} elements of a list",
		"capitalises the first letter of each word",
		"sums the {field} values of a list of {entity} records",
		"formats a price in cents as a dollar string",
	},
	{
		"parses an ISO-8601 date and returns the weekday",
		"deduplicates a list of {entity} records by {field}, keeping the latest",
		"computes a moving average over a window of {small} values",
		"validates an email address with a regular expression",
		"groups {entity} records by {field} and counts them",
		"reads a CSV file of {entity} records and returns the top {small} by {field}",
		"retries an HTTP GET up to {small} times with exponential backoff",
		"flattens a nested list of arbitrary depth",
		"converts a snake_case JSON document to camelCase keys",
		"paginates a list into pages of {n} items",
	},
	{
		"implements an LRU cache with capacity {n} and O(1) get and put",
		"merges overlapping time intervals and returns them sorted",
		"performs a topological sort of a dependency graph and detects cycles",
		"implements a token-bucket rate limiter allowing {n} requests per second",
		"finds the shortest path in a weighted graph with Dijkstra's algorithm",
		"implements a trie with insert, search and prefix listing",
		"computes the diff between two JSON documents as a list of patch operations",
		"parses arithmetic expressions with +, -, *, / and parentheses into an AST and evaluates them",
		"streams a large log file and reports the {small} most frequent error codes using bounded memory",
		"implements consistent hashing with virtual nodes",
	},
	{
		"implements a concurrent worker pool with a bounded queue, graceful shutdown and per-job timeouts",
		"implements a thread-safe in-memory key-value store with TTLs, snapshots to disk and crash recovery",
		"implements a write-ahead log with checksums, segment rotation every {n} MB and replay on start-up",
		"implements a distributed-lock client with leases, fencing tokens and automatic renewal",
		"implements an event-sourced shopping cart with projections, idempotent commands and optimistic concurrency",
		"implements a B-tree of order {small} with insert, delete and range scans",
		"implements a job scheduler with cron expressions, retries with jitter, and at-most-once execution across {small} replicas",
		"implements a streaming JSON parser that validates against a schema without loading the whole document",
		"implements a Raft-style leader election among {small} nodes over an in-memory transport",
		"implements a query planner that rewrites nested subqueries on {entity} tables into joins",
	},
}

var codeIntroL1 = []string{
	"Write a {lang} function that {task}.",
	"{lang}: function that {task}",
	"How do I write a function in {lang} that {task}?",
	"Give me {lang} code that {task}.",
	"Quick {lang} snippet that {task}, please.",
	"Can you write a small {lang} helper that {task}?",
}

var codeIntroL2 = []string{
	"Write a {lang} function that {task}. Include type annotations and a short docstring.",
	"In {lang}, using {lib}, write code that {task}.",
	"I'm building a {product} integration in {lang}. Write a function that {task}, with error handling.",
	"Implement, in idiomatic {lang}, a function that {task}. Add a couple of tests with {testfw}.",
	"Our {dept} team needs a {lang} utility that {task}. Keep it dependency-free.",
}

var codeIntroL3 = []string{
	"Write production-quality {lang} code that {task}. Use {lib} where it helps.",
	"Design and implement in {lang} a component that {task}. It will run inside our {product} service for {company}.",
	"Implement the following in {lang}: a module that {task}.",
	"You are a senior {lang} engineer. Write a module that {task}, with tests in {testfw}.",
}

var codeIntroL4 = []string{
	"Design and implement in {lang} a module that {task}. This is for {company}'s {product} backend, which handles about {big} requests per second in {region}.",
	"Write a complete {lang} implementation of a library that {task}. Explain the design first, then give the code, then the tests.",
	"We are replacing a legacy service at {company}. In {lang}, using {lib}, build a component that {task}.",
}

var codeEasyConstraints = []string{
	"Keep it short.",
	"Add comments.",
	"Show an example call.",
	"No external libraries.",
	"Use descriptive variable names.",
}

var codeHardConstraints = []string{
	"Handle edge cases: empty input, very large input, unicode, and invalid values.",
	"The time complexity must be O(n log n) or better; state the complexity of each function.",
	"It must be thread-safe and free of data races under concurrent use.",
	"Write unit tests with {testfw} covering at least {small} edge cases, including failure paths.",
	"Do not use global mutable state; pass configuration explicitly.",
	"Return errors instead of throwing or panicking, and wrap them with context.",
	"Memory usage must stay bounded at {n} MB regardless of input size.",
	"Include a benchmark and report allocations per operation.",
	"Make the public API backwards compatible with version {version}.",
	"Validate all inputs and reject malformed ones with a descriptive error.",
	"If the input is already sorted, the function must run in linear time.",
	"Support cancellation and timeouts through a context or equivalent mechanism.",
	"Avoid recursion, since inputs can be nested more than {big} levels deep.",
	"Write property-based tests that check the invariants of the data structure.",
	"The implementation must be deterministic: no reliance on map iteration order or wall-clock time.",
}

// snippet returns a short code snippet with a bug, in the prompt's language
// family, for fix-and-extend prompts.
func (f *filler) snippet() string {
	id := f.pick(identifiers)
	field := f.pick(entityFields)
	n := f.between(2, 20)
	switch f.lang.Snippet {
	case "python":
		return fmt.Sprintf("```python\ndef process_%s(%s, limit=%d):\n    result = []\n    for i in range(1, len(%s)):\n        if %s[i][\"%s\"] is not None:\n            result.append(%s[i][\"%s\"])\n        if len(result) > limit:\n            break\n    return sorted(result)[::-1][0]\n```",
			id, id, n, id, id, field, id, field)
	case "go":
		return fmt.Sprintf("```go\nfunc process%s(%s []Record, limit int) (string, error) {\n\tvar out []string\n\tfor i := 0; i <= len(%s); i++ {\n\t\tif %s[i].%s != \"\" {\n\t\t\tout = append(out, %s[i].%s)\n\t\t}\n\t\tif len(out) > limit {\n\t\t\tbreak\n\t\t}\n\t}\n\treturn out[0], nil // limit %d\n}\n```",
			strings.ToUpper(id[:1])+id[1:], id, id, id, strings.ToUpper(field[:1])+field[1:], id, strings.ToUpper(field[:1])+field[1:], n)
	case "js":
		return fmt.Sprintf("```js\nasync function process(%s, limit = %d) {\n  const out = [];\n  %s.forEach(async (r) => {\n    const v = await fetch(`/api/%s/${r.%s}`);\n    if (out.length < limit) out.push(v.json());\n  });\n  return out.sort()[0];\n}\n```",
			id, n, id, id, field)
	}
	return ""
}

func (f *filler) code(level int) string {
	// Mostly tasks of the prompt's own tier, sometimes an easier one.
	tier := level
	if tier > 1 && f.chance(0.2) {
		tier--
	}
	task := f.expand(f.pick(codeTasks[tier-1]))

	tpl := f.intro(taskStyles[TaskCode], level)
	cons := f.constraints(taskStyles[TaskCode], level)
	text := f.expand(strings.ReplaceAll(tpl, "{task}", task))

	if level >= 3 {
		// A longer specification: an interface sketch or a buggy snippet.
		if sn := f.snippet(); sn != "" && f.chance(0.5) {
			text += "\n\n" + f.pick([]string{
				"Start from this existing code, which has several bugs (off-by-one, crashes on empty input); fix them and explain each fix:\n\n",
				"Here is the current implementation; refactor it and keep the behaviour for valid inputs:\n\n",
				"Our current version is below. It fails in production with an index error. Find the bug first:\n\n",
			}) + sn
		} else {
			ops := f.pickN([]string{"Get", "Put", "Delete", "List", "Close", "Flush", "Stats", "Subscribe", "Snapshot", "Restore"}, f.between(3, 6))
			var b strings.Builder
			b.WriteString("\n\nThe public API should expose these operations:\n")
			for _, op := range ops {
				fmt.Fprintf(&b, "- %s(%s): %s\n", op, f.pick([]string{"key", "ctx, key", "id, value", "ctx", "opts", "filter"}),
					f.expand(f.pick([]string{
						"returns an error if the store is closed",
						"must complete within {n} ms at p99",
						"is idempotent",
						"may be called concurrently from many goroutines or threads",
						"returns results sorted by {field}",
						"emits a metric on every call",
					})))
			}
			text += strings.TrimRight(b.String(), "\n")
		}
	}
	if level == 4 {
		text += f.maybe(0.5, []string{
			"\n\nNon-functional requirements: p99 latency under {n} ms, no more than {small} allocations per request, structured logging, and graceful degradation when the {component} is unavailable.",
			"\n\nAlso describe how you would test failure scenarios: network partitions, a slow {component}, a full disk, and clock skew of {n} seconds.",
			"\n\nIf the input exceeds {big} items, switch to a streaming strategy, unless the caller has set a strict-memory flag, in which case fail fast with a clear error.",
		})
	}
	return f.withConstraints(text, cons)
}
