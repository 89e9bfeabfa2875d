package synthetic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// factTpl is a fact a knowledge-base passage can state about a subject, with
// the question that asks for it and a comparison question over two subjects.
type factTpl struct {
	subj string // placeholder key of the subject kind
	lo   int    // value range
	hi   int
	stmt string // {S} subject, {V} value
	q    string
	cmp  string // {S}, {S2}
}

var factTpls = []factTpl{
	{"plan", 5, 500, "The {S} plan includes {V} GB of storage per user.", "How much storage per user does the {S} plan include?", "Which plan includes more storage per user, {S} or {S2}?"},
	{"plan", 60, 6000, "On the {S} plan, the API rate limit is {V} requests per minute.", "What is the API rate limit on the {S} plan?", "Is the API rate limit higher on {S} or on {S2}, and by how much?"},
	{"product", 7, 90, "Purchases of {S} can be refunded within {V} days of delivery.", "How long is the refund window for {S}?", "Which has the longer refund window, {S} or {S2}?"},
	{"dept", 50, 900, "Staff in {S} may claim up to €{V} per month for {expense}.", "How much can someone in {S} claim per month for {expense}?", "Who can claim more per month for {expense}, staff in {S} or in {S2}?"},
	{"plan", 90, 99, "The {S} plan comes with a {V}.9% uptime SLA.", "What uptime does the {S} plan guarantee?", "Which plan has the stronger uptime SLA, {S} or {S2}?"},
	{"product", 30, 730, "{S} keeps audit logs for {V} days.", "How long does {S} keep audit logs?", "Which product keeps audit logs longer, {S} or {S2}?"},
	{"city", 6, 10, "The {S} support desk opens at {V}:00 local time.", "When does the {S} support desk open?", "Which support desk opens earlier, {S} or {S2}?"},
	{"city", 4, 30, "Employees based in the {S} office receive {V} weeks of paid parental leave.", "How many weeks of paid parental leave do employees in {S} get?", "Do employees in {S} or in {S2} get more paid parental leave?"},
	{"dept", 30, 180, "Accounts in {S} must rotate passwords every {V} days.", "How often must accounts in {S} rotate passwords?", "Which team rotates passwords more often, {S} or {S2}?"},
	{"city", 1, 12, "Standard shipping to {S} takes {V} business days.", "How long does standard shipping to {S} take?", "Is standard shipping faster to {S} or to {S2}?"},
	{"plan", 4, 120, "The {S} plan costs ${V} per seat per month when billed annually.", "What does the {S} plan cost per seat per month on annual billing?", "How much more per seat per month is {S} than {S2} on annual billing?"},
	{"product", 10, 5000, "{S} accepts uploads of up to {V} MB per file.", "What is the maximum upload size in {S}?", "Which accepts larger uploads, {S} or {S2}?"},
	{"dept", 3, 14, "The {S} on-call rotation lasts {V} days.", "How long is an on-call rotation in {S}?", "Whose on-call rotation is longer, {S} or {S2}?"},
	{"region", 20, 400, "Median API latency in {S} was {V} ms last quarter.", "What was the median API latency in {S} last quarter?", "Which region had lower median latency last quarter, {S} or {S2}?"},
	{"product", 6, 60, "{S} hardware is covered by a {V}-month warranty.", "How long is the warranty on {S} hardware?", "Which hardware has the longer warranty, {S} or {S2}?"},
	{"plan", 5, 1000, "The {S} plan allows at most {V} seats before a sales contract is required.", "How many seats does the {S} plan allow?", "How many more seats does {S} allow than {S2}?"},
	{"city", 0, 5, "Staff in the {S} office may work remotely up to {V} days per week.", "How many remote days per week are allowed in the {S} office?", "Which office allows more remote days, {S} or {S2}?"},
	{"region", 1, 24, "Backups in {S} are taken every {V} hours and copied to a second zone.", "How often are backups taken in {S}?", "Are backups more frequent in {S} or in {S2}?"},
	{"plan", 5, 60, "Non-profits get a {V}% discount on the {S} plan.", "What discount do non-profits get on the {S} plan?", "Is the non-profit discount larger on {S} or on {S2}?"},
	{"dept", 300, 5000, "Each engineer in {S} has an annual training budget of ${V}.", "What is the annual training budget per engineer in {S}?", "What is the difference in annual training budget between {S} and {S2}?"},
}

var ragFillerLines = []string{
	"This document applies to all full-time and part-time staff.",
	"Exceptions must be approved in writing by the head of {dept}.",
	"Questions should be sent to the {dept} helpdesk.",
	"Terms not defined here follow the master services agreement.",
	"Earlier versions of this document are superseded.",
	"Customers are notified {n} days before any change takes effect.",
	"Amounts exclude VAT unless stated otherwise.",
	"Contractors are covered only where their contract says so.",
	"The policy owner reviews this page every {small} months.",
	"See the {dockind} on data protection for related obligations.",
	"Limits are enforced per workspace, not per user, unless noted.",
	"These rules were introduced after the audit of {month}.",
	"Regional law takes precedence where it is stricter.",
	"In case of doubt, the English version of this {dockind} prevails.",
	"Requests received after {time} are handled on the next business day.",
	"Usage above the limit is billed at the standard overage rate.",
	"The figures below were last verified by {person}.",
	"Historical values are kept in the archive for reference only.",
}

var ragIntroL1 = []string{
	"Answer the question using the context.\n\nContext:\n{ctx}\n\nQuestion: {q}",
	"{ctx}\n\nBased on the text above: {q}",
	"Context: {ctx}\nQ: {q}\nA:",
	"Read this and answer: {q}\n\n{ctx}",
	"Using the snippet below, {qlow}\n\n{ctx}",
}

var ragIntroL2 = []string{
	"Use only the documents below to answer the question.\n\n{ctx}\n\nQuestion: {q}",
	"You are a help-centre assistant for {company}. Answer from the knowledge base excerpt.\n\n{ctx}\n\nCustomer question: {q}",
	"Here is an excerpt from our internal {dockind}:\n\n{ctx}\n\n{q}",
	"Given the following context, answer the user's question concisely.\n---\n{ctx}\n---\nUser: {q}",
}

var ragIntroL3 = []string{
	"You are a retrieval-augmented assistant for {company} ({industry}). Answer strictly from the retrieved documents.\n\nRetrieved documents:\n{ctx}\n\nQuestion: {q}",
	"The following passages were retrieved for a question from {person} in {dept}.\n\n{ctx}\n\nQuestion: {q}",
	"Answer the questions below using the {dockind} excerpts.\n\n{ctx}\n\nQuestions:\n{q}",
}

var ragIntroL4 = []string{
	"System: you answer questions for {company}'s employees using only the retrieved documents. Documents can be outdated or contradict each other.\n\n{ctx}\n\nQuestion from {person} ({dept}): {q}",
	"Below are {ndocs} documents retrieved from several versions of the {dockind}. Some were superseded.\n\n{ctx}\n\nTask: {q}",
	"You are auditing answers given by our support bot. Using only these sources, produce the correct answer.\n\n<documents>\n{ctx}\n</documents>\n\n<question>\n{q}\n</question>",
}

var ragEasyConstraints = []string{
	"Be brief.",
	"Answer in one sentence.",
	"Use only the context.",
	"Quote the relevant sentence.",
}

var ragHardConstraints = []string{
	"Cite the document id in square brackets after each claim, e.g. [Doc 2].",
	"If the answer is not in the documents, reply exactly \"Not stated in the provided documents.\"",
	"If two documents disagree, prefer the most recently updated one unless it is marked as a draft, and mention the conflict.",
	"Do not use any knowledge outside the documents.",
	"Show the calculation step by step if the answer requires combining figures.",
	"Answer in at most {n} words, then list the supporting quotes.",
	"Give the answer as JSON with fields \"answer\", \"sources\" and \"confidence\".",
	"If the question is ambiguous, state both readings and answer each.",
	"Mention any exception or condition that limits the answer.",
	"Both questions must be answered; number the answers to match.",
	"Justify why the other documents are not relevant.",
}

// ragDoc renders one retrieved document.
func (f *filler) ragDoc(id int, body []string) string {
	head := f.expand(f.pick([]string{
		"[Doc %d] {product} {dockind} (updated {date})",
		"Document %d: {dockind} for {company}, version {version}",
		"### Source %d: {dept} {dockind}, last reviewed {date}",
		"[%d] {company} {dockind}, section {small}.{small}",
	}))
	return fmt.Sprintf(head, id) + "\n" + strings.Join(body, " ")
}

// factText fills a fact template for subject s and value v.
func (f *filler) factText(tpl, s, s2 string, v int) string {
	return f.expand(fillSlots(tpl, "S2", s2, "S", s, "V", strconv.Itoa(v)))
}

func (f *filler) rag(level int) string {
	ndocs := []int{1, f.between(1, 2), f.between(2, 4), f.between(3, 6)}[level-1]
	perDoc := []int{f.between(2, 4), f.between(4, 7), f.between(5, 9), f.between(6, 11)}[level-1]
	docs := make([][]string, ndocs)

	addLine := func(line string) {
		d := f.rng.IntN(ndocs)
		if slices.Contains(docs[d], line) {
			return
		}
		docs[d] = append(docs[d], line)
	}
	target := factTpls[f.rng.IntN(len(factTpls))]
	s := f.value(target.subj)
	s2 := f.value(target.subj)
	for tries := 0; s2 == s && tries < 8; tries++ {
		s2 = f.value(target.subj)
	}
	v := f.between(target.lo, target.hi)
	addLine(f.factText(target.stmt, s, "", v))

	var qs []string
	switch {
	case level <= 2:
		qs = append(qs, f.factText(target.q, s, "", v))
	case level == 3:
		if f.chance(0.5) {
			addLine(f.factText(target.stmt, s2, "", f.between(target.lo, target.hi)))
			qs = append(qs, f.factText(target.cmp, s, s2, v))
		} else {
			other := factTpls[f.rng.IntN(len(factTpls))]
			os := f.value(other.subj)
			addLine(f.factText(other.stmt, os, "", f.between(other.lo, other.hi)))
			qs = append(qs, f.factText(target.q, s, "", v), f.factText(other.q, os, "", 0))
		}
	default:
		// A superseded value of the same fact, a comparison and a condition.
		addLine(f.factText(target.stmt, s, "", f.between(target.lo, target.hi)) + f.expand(" (superseded on {date})"))
		addLine(f.factText(target.stmt, s2, "", f.between(target.lo, target.hi)))
		q := f.factText(target.cmp, s, s2, v)
		q += f.maybe(0.5, []string{
			" If the answer depends on the plan, assume the customer is on {plan} and has {n} seats.",
			" Then explain whether this changes for staff who joined after {date}, unless they are contractors.",
			" Also compute the difference over a full year, showing each step.",
			" Finally, say which document should be updated and why.",
		})
		qs = append(qs, q)
		if f.chance(0.6) {
			other := factTpls[f.rng.IntN(len(factTpls))]
			qs = append(qs, f.factText(other.q, f.value(other.subj), "", 0))
		}
	}
	// Distractor facts and filler prose.
	for total := len(qs) + 1; total < ndocs*perDoc; total++ {
		if f.chance(0.55) {
			d := factTpls[f.rng.IntN(len(factTpls))]
			addLine(f.factText(d.stmt, f.value(d.subj), "", f.between(d.lo, d.hi)))
		} else {
			addLine(f.expand(f.pick(ragFillerLines)))
		}
	}
	rendered := make([]string, 0, ndocs)
	for i, body := range docs {
		if len(body) == 0 {
			body = []string{f.expand(f.pick(ragFillerLines))}
		}
		rendered = append(rendered, f.ragDoc(i+1, body))
	}
	ctx := strings.Join(rendered, "\n\n")
	if ndocs == 1 && f.chance(0.5) {
		// A bare passage without a header.
		ctx = strings.Join(docs[0], " ")
	}

	q := qs[0]
	if len(qs) > 1 {
		q = f.list(qs)
	}
	tpl := f.intro(taskStyles[TaskRAG], level)
	cons := f.constraints(taskStyles[TaskRAG], level)
	qlow := strings.ToLower(q[:1]) + q[1:]
	text := fillSlots(f.expand(tpl), "ctx", ctx, "qlow", qlow, "q", q, "ndocs", strconv.Itoa(ndocs))
	return f.withConstraints(text, cons)
}
