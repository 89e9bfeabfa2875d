package synthetic

import "strings"

// docGenre is one kind of document to summarise, with the sentences it is
// made of.
type docGenre struct {
	name  string
	lines []string
}

var docGenres = []docGenre{
	{"meeting notes", []string{
		"{person} said the {product} launch will slip to {month} because the vendor contract is not signed.",
		"Action item: {person2} to send the revised budget by {weekday}.",
		"The team agreed to cut the {metric} target from {n} to {n} for the quarter.",
		"{person} raised concerns about hiring {small} contractors in {city}.",
		"Decision: the pilot with {company} continues for another {small} weeks.",
		"Open question: who owns the migration of the {component} after {date}?",
		"{person2} reported that {metric} improved by {pct} since the redesign.",
		"Legal has not yet approved the data-sharing clause with {company}.",
		"Next meeting moved to {weekday} at {time}.",
		"{person} will present the {dept} roadmap at the all-hands.",
		"Budget for {dept} is frozen until the audit closes on {date}.",
		"There was disagreement about whether to prioritise {product} or the mobile app.",
	}},
	{"incident report", []string{
		"At {time} UTC on {date}, error rates on {product} rose to {pct}.",
		"The root cause was a misconfigured {component} in {region}.",
		"About {big} customers were affected for {n} minutes.",
		"On-call engineer {person} rolled back release {version} at {time} UTC.",
		"Monitoring did not alert because the threshold was set to {pct}.",
		"A second, unrelated spike at {time} was traced to a retry storm from the {component}.",
		"No data was lost, but {n} webhook deliveries were delayed.",
		"Follow-up: add a canary stage to the deployment pipeline before {date}.",
		"Customer support received {big} tickets during the incident.",
		"The status page was updated {n} minutes after the first alert.",
		"The fix was verified in {region} before being rolled out globally.",
	}},
	{"news article", []string{
		"{company} reported quarterly revenue of ${money}, up {pct} year over year.",
		"The company plans to open {n} new offices, including one in {city}.",
		"Chief executive {person} said demand from the {industry} sector remained strong.",
		"Analysts had expected slower growth because of higher interest rates.",
		"Shares rose {pct} in early trading on {weekday}.",
		"The firm also announced a partnership with {company2} on {topic}.",
		"Regulators in {city} are reviewing the deal, which could close by {month}.",
		"Margins were squeezed by rising logistics costs in {region}.",
		"{company} employs about {big} people worldwide.",
		"Critics argue the expansion ignores the risks of {topic}.",
	}},
	{"customer call transcript", []string{
		"Agent: Thanks for calling {company}, this is {first}, how can I help?",
		"Customer: Hi, my {product} has been showing error {errcode} since {weekday}.",
		"Agent: I'm sorry about that, can you confirm the order number?",
		"Customer: It's {order}, I bought it in {month}.",
		"Agent: I see a known issue with firmware {version}; a fix is scheduled.",
		"Customer: I've already called {small} times and I'm losing patience.",
		"Agent: I can offer a {pct} credit on your next invoice.",
		"Customer: I'd rather have a replacement shipped to {city}.",
		"Agent: I'll escalate this to our {dept} team and call you back within {n} hours.",
		"Customer: Fine, but please put it in writing.",
	}},
	{"research abstract", []string{
		"We study {topic} in the setting of {industry}.",
		"Prior work relies on hand-labelled data, which is expensive to collect.",
		"We propose a method that learns from {big} weakly labelled examples.",
		"Our approach improves {metric} by {pct} on {small} public benchmarks.",
		"Ablations show that most of the gain comes from the data-cleaning step.",
		"We also release a dataset of {big} annotated records from {city}.",
		"Limitations include a bias towards English-language sources.",
		"Results hold across {small} random seeds with low variance.",
		"The method runs {small} times faster than the strongest baseline.",
	}},
	{"email thread", []string{
		"From {person}: Can we move the {product} review to {weekday}?",
		"From {person2}: {weekday} works, but I need the numbers from {dept} first.",
		"From {person}: The {metric} figures are attached; they look {pct} worse than forecast.",
		"From {person2}: That's because the {city} store was closed for {small} days.",
		"From {person}: OK, let's add a note and still share with the board.",
		"From {person3}: Adding myself, please include the risk register.",
		"From {person2}: Will do, draft by end of day.",
		"From {person3}: Also, {company} asked for an extension until {date}.",
	}},
	{"product changelog", []string{
		"Version {version} adds bulk export for {entity} records.",
		"Fixed a crash when opening reports with more than {big} rows.",
		"The {plan} plan now includes single sign-on.",
		"Deprecated the v1 API; it will be removed on {date}.",
		"Improved search latency by {pct} in {region}.",
		"New integration with {product2}.",
		"Dark mode is now available on mobile.",
		"Fixed an issue where invoices showed the wrong currency.",
		"Audit logs are retained for {n} days instead of 30.",
	}},
}

var sumIntroL1 = []string{
	"Summarise this in one sentence:\n\n{doc}",
	"TL;DR:\n{doc}",
	"Give a short summary of the following {genre}.\n\n{doc}",
	"{doc}\n\nSummarize the above.",
	"What's the gist of these {genre}?\n{doc}",
	"Short summary please:\n{doc}",
	"Summarize: {doc}",
}

var sumIntroL2 = []string{
	"Summarise the following {genre} in {small} bullet points for {audience}.\n\n{doc}",
	"Please write a brief summary of this {genre} from {company}. Keep it under {n}0 words.\n\n---\n{doc}\n---",
	"Here are the {genre} from {weekday}. Summarize the key points and decisions.\n\n{doc}",
	"Condense the {genre} below into a short paragraph a busy manager can read in 30 seconds.\n\n{doc}",
	"I need a summary of this {genre} for the {dept} channel.\n\n{doc}",
}

var sumIntroL3 = []string{
	"You are an assistant for the {dept} team at {company}. Summarise the {genre} below.\n\n\"\"\"\n{doc}\n\"\"\"",
	"Produce a structured summary of the following {genre} for {audience}.\n\n{doc}",
	"Read the {genre} carefully and write a summary that a new colleague could act on.\n\n{doc}",
	"Summarise this {genre} about {product}; the reader is {audience}.\n\n{doc}",
}

var sumIntroL4 = []string{
	"You are drafting an executive brief for {audience} at {company}, a {industry} company. Source material ({genre}):\n\n\"\"\"\n{doc}\n\"\"\"",
	"Below are raw {genre} collected over {small} days. Turn them into a formal summary suitable for an audit file.\n\n{doc}",
	"Write a layered summary of the {genre} below for {audience}: first a headline, then details.\n\n===\n{doc}\n===",
}

var sumEasyConstraints = []string{
	"Keep it short.",
	"Use plain language.",
	"Write it in a {tone} tone.",
	"Start with the most important point.",
	"Use bullet points.",
}

var sumHardConstraints = []string{
	"Use exactly {small} bullet points, each under {n} words.",
	"Keep every figure, date and percentage exactly as written.",
	"List action items separately, each with an owner and a deadline.",
	"Write in a formal register and do not use the first person.",
	"The summary must be at most {n}0 words.",
	"If any figures conflict, flag the conflict rather than choosing one.",
	"Do not mention any customer or employee by name; use their role instead.",
	"End with a section called \"Open risks\" listing at least {small} risks.",
	"Include a table with columns: decision, owner, due date, status.",
	"Write the summary in exactly three paragraphs: context, findings, next steps.",
	"Separate facts from opinions, and label each opinion with who expressed it.",
	"Translate the summary into Spanish as well, keeping both versions the same length.",
	"Highlight anything that contradicts the plan agreed on {date}.",
	"Quote no more than one sentence verbatim from the source.",
}

func (f *filler) summarization(level int) string {
	g := docGenres[f.rng.IntN(len(docGenres))]
	lo, hi := []int{3, 6, 10, 15}[level-1], []int{5, 9, 14, 22}[level-1]
	n := f.between(lo, hi)
	sep := " "
	if g.name == "customer call transcript" || g.name == "email thread" || g.name == "product changelog" || f.chance(0.3) {
		sep = "\n"
	}
	var sents []string
	for _, t := range f.pickN(g.lines, n) {
		sents = append(sents, f.expand(t))
	}
	doc := strings.Join(sents, sep)
	if rest := n - len(sents); rest > 0 {
		// Long documents get a second section from another genre.
		g2 := docGenres[f.rng.IntN(len(docGenres))]
		var more []string
		for _, t := range f.pickN(g2.lines, rest) {
			more = append(more, f.expand(t))
		}
		doc += "\n\n" + f.pick([]string{"Background:", "Attached:", "Related notes:", "Earlier material:", "Appendix:"}) +
			" (" + g2.name + ")\n" + strings.Join(more, sep)
	}

	tpl := f.intro(taskStyles[TaskSummarization], level)
	cons := f.constraints(taskStyles[TaskSummarization], level)
	return f.withConstraints(fillSlots(f.expand(tpl), "genre", g.name, "doc", doc), cons)
}
