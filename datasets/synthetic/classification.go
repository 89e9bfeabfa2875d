package synthetic

import (
	"fmt"
	"slices"
	"strings"
)

// clsLabel is one label of a classification family: its definition for the
// labelling guide and sentences that exemplify it.
type clsLabel struct {
	name  string
	def   string
	lines []string
}

// clsFamily is one kind of classification job (sentiment, ticket routing...).
type clsFamily struct {
	kind   string
	labels []clsLabel
}

var clsFamilies = []clsFamily{
	{"product review", []clsLabel{
		{"positive", "the reviewer is satisfied overall", []string{
			"I love my new {product}, setup took five minutes.", "Best purchase this year, the battery lasts {small} days.",
			"Customer service at {company} was quick and kind.", "Works exactly as described and shipping was fast.",
			"Honestly impressed, it replaced {small} other tools for our team.", "Five stars, would buy again for my office in {city}.",
		}},
		{"negative", "the reviewer is dissatisfied overall", []string{
			"The {product} stopped syncing after {small} days.", "Terrible support, I waited {n} minutes on hold.",
			"It arrived broken and the refund still hasn't come through.", "Way too expensive for what it does.",
			"The app crashes every time I open the reports tab.", "Do not buy this, it overheats within an hour.",
		}},
		{"neutral", "factual, no clear opinion", []string{
			"It does what the box says.", "Received the {product} on {weekday}.", "The colour is slightly darker than in the photos.",
			"I use it mainly for invoices.", "Comes with a {small}-page manual and a USB-C cable.",
		}},
		{"mixed", "clear praise and clear complaints together", []string{
			"Great screen, awful battery.", "Support was helpful but the product itself is buggy.",
			"Love the design, hate the subscription price.", "Fast delivery, although one part was missing.",
		}},
	}},
	{"support ticket", []clsLabel{
		{"billing", "invoices, charges, payment methods", []string{
			"I was charged twice for my {plan} subscription this month.", "Can you send a VAT invoice for order {order}?",
			"My card ending in {small}{small}{small}{small} was declined but the money left my account.", "Why did my bill go up by {pct}?",
		}},
		{"technical issue", "something does not work as intended", []string{
			"The {product} dashboard shows error {errcode} since this morning.", "Exports to CSV time out after {n} seconds.",
			"Sync between the mobile app and the web app is broken.", "Our webhook stopped firing after the {version} update.",
		}},
		{"account access", "login, passwords, 2FA, permissions", []string{
			"I can't log in, the reset email never arrives.", "My colleague {person} lost access after the SSO change.",
			"2FA codes are rejected even though the clock is correct.", "Please unlock the account for {first}@{company}.",
		}},
		{"cancellation", "the customer wants to end a contract", []string{
			"Please cancel our {plan} plan at the end of the term.", "We are moving to a competitor and need to close the account.",
			"How do I stop the automatic renewal?", "Cancel everything, we are shutting down the {city} office.",
		}},
		{"feature request", "asks for something the product does not do", []string{
			"It would be great if the {product} supported dark mode.", "Could you add an export to Parquet?",
			"We need role-based permissions for {n} teams.", "Please add an API endpoint for bulk updates.",
		}},
		{"shipping", "delivery of physical goods", []string{
			"Order {order} has been stuck in {city} for {small} days.", "The tracking link returns a 404.",
			"The parcel was delivered to the wrong address.", "Can you ship to a P.O. box?",
		}},
		{"refund", "asks for money back", []string{
			"I want a refund for the unused months.", "The item was faulty, please refund order {order}.",
			"You promised a refund on {date} and I still have nothing.",
		}},
		{"other", "none of the above", []string{
			"Do you have offices in {city}?", "Who is your data protection officer?", "Just wanted to say thanks to {first}!",
		}},
	}},
	{"email", []clsLabel{
		{"sales", "prospects asking about buying", []string{
			"We are evaluating {product} for {n} seats, can we get a quote?", "Is there a discount for non-profits?",
			"Could we schedule a demo next {weekday}?",
		}},
		{"support", "existing customers with problems", []string{
			"Since the update our reports are empty.", "The integration with {product} fails with error {errcode}.",
		}},
		{"HR", "employees, payroll, leave", []string{
			"I would like to request parental leave starting {date}.", "My payslip for {month} is missing overtime.",
			"Can I carry over {small} days of holiday?",
		}},
		{"legal", "contracts, disputes, compliance", []string{
			"Please review the attached NDA from {company}.", "We received a subpoena regarding account {order}.",
			"The DPA needs a clause on sub-processors.",
		}},
		{"finance", "budgets, payments, accounting", []string{
			"The Q{small} budget for {dept} needs approval by {weekday}.", "Invoice {order} is {n} days overdue.",
		}},
		{"spam", "unsolicited bulk mail", []string{
			"Congratulations, you have won a {money} gift card!!!", "Cheap followers, 10k for $5, click now.",
			"Your mailbox is full, verify your password here.",
		}},
		{"partnership", "proposals to collaborate", []string{
			"{company} would like to explore a co-marketing partnership.", "We'd love to integrate our API with {product}.",
		}},
		{"recruiting", "candidates and hiring", []string{
			"Attached is my CV for the data engineer role.", "When will I hear back about the interview on {date}?",
		}},
	}},
	{"incident report", []clsLabel{
		{"P1", "full outage or data loss for many customers", []string{
			"All customers in {region} are getting 503 errors.", "The primary database is down and writes are failing.",
			"Payments are failing for everyone since {time} UTC.",
		}},
		{"P2", "major feature broken, workaround exists", []string{
			"Report exports fail, but users can still view reports on screen.", "Login is slow, about {n} seconds, but works.",
		}},
		{"P3", "minor bug, few users affected", []string{
			"A typo on the pricing page.", "One customer sees the wrong timezone in emails.",
			"The {product} icon is blurry on retina screens.",
		}},
		{"P4", "cosmetic or question", []string{
			"Could the footer link colour match the brand guide?", "Internal question about the on-call schedule.",
		}},
	}},
	{"news headline", []clsLabel{
		{"politics", "government, elections, policy", []string{"Parliament passes budget after {n}-hour debate.", "Mayor of {city} announces re-election bid."}},
		{"business", "companies, markets, economy", []string{"{company} shares rise {pct} after earnings beat.", "{company} to acquire rival for ${money}."}},
		{"sports", "competitions and athletes", []string{"{city} FC wins derby {small}-1.", "Marathon record broken in {city}."}},
		{"technology", "tech products and companies", []string{"{company} unveils {product} with on-device AI.", "Major browser drops support for legacy plug-ins."}},
		{"science", "research and discoveries", []string{"Astronomers spot {n} new exoplanets.", "Study links {topic} to longer lifespans."}},
		{"entertainment", "film, music, celebrities", []string{"Sequel tops box office in {month}.", "Band announces farewell tour starting in {city}."}},
		{"health", "medicine and public health", []string{"New vaccine shows {pct} efficacy in trial.", "Hospitals in {city} report shorter waiting times."}},
	}},
	{"message", []clsLabel{
		{"English", "written in English", []string{"Could you check my order status please?", "See you at the meeting tomorrow."}},
		{"Spanish", "written in Spanish", []string{"¿Podrían revisar el estado de mi pedido?", "Nos vemos en la reunión de mañana."}},
		{"French", "written in French", []string{"Pourriez-vous vérifier ma commande, s'il vous plaît ?", "À demain pour la réunion."}},
		{"German", "written in German", []string{"Können Sie bitte den Status meiner Bestellung prüfen?", "Bis morgen in der Besprechung."}},
		{"Portuguese", "written in Portuguese", []string{"Vocês podem verificar o meu pedido?", "Até amanhã na reunião."}},
		{"Italian", "written in Italian", []string{"Potreste controllare il mio ordine?", "Ci vediamo domani alla riunione."}},
		{"Dutch", "written in Dutch", []string{"Kunnen jullie mijn bestelling controleren?", "Tot morgen bij de vergadering."}},
	}},
	{"forum comment", []clsLabel{
		{"not toxic", "civil, even if critical", []string{"I disagree, the benchmark ignores cold starts.", "Thanks, this fixed it for me on {product}.", "Has anyone tried this with {lang}?"}},
		{"harassment", "insults aimed at a person", []string{"You clearly have no idea what you're talking about, idiot.", "{first}, nobody asked for your useless opinion."}},
		{"threat", "threatens harm", []string{"Keep posting this and you'll regret it, I know where you work."}},
		{"profanity", "swearing without a target", []string{"This damn update broke everything again, what the hell."}},
	}},
	{"product listing", []clsLabel{
		{"Electronics", "devices and accessories", []string{"Wireless earbuds with {n}h battery and noise cancelling.", "{small}-port USB-C hub, 100 W pass-through."}},
		{"Home & Kitchen", "household goods", []string{"Cast-iron skillet, {n} cm, pre-seasoned.", "Set of {small} linen napkins."}},
		{"Apparel", "clothing and shoes", []string{"Merino running socks, pack of {small}.", "Waterproof hiking jacket, sizes XS-XXL."}},
		{"Sports & Outdoors", "sport and camping gear", []string{"{small}-person dome tent, {n} kg.", "Adjustable dumbbells, 2-{n} kg."}},
		{"Beauty", "cosmetics and care", []string{"SPF 50 mineral sunscreen, {n} ml.", "Vitamin C serum with hyaluronic acid."}},
		{"Toys", "toys and games", []string{"Wooden train set, {n} pieces, ages 3+.", "Cooperative board game for {small} players."}},
		{"Grocery", "food and drink", []string{"Organic oat milk, {small} x 1 L.", "Single-origin coffee beans from {city} roastery, {n}0 g."}},
	}},
}

var clsIntroL1 = []string{
	"Classify this {kind} as {labelsOr}:\n\"{input}\"",
	"{input}\n\nLabel this {kind}: {labels}.",
	"Is this {kind} {labelsOr}?\n{input}",
	"Tag the {kind} below with one of: {labels}.\n{input}",
	"Which label fits this {kind} ({labels})? \"{input}\"",
	"{kind} -> label ({labels}): {input}",
	"Pick one of {labels} for: \"{input}\"",
	"Label: {input}",
	"quick one, {labelsOr}? \"{input}\"",
	"Category for this {kind}? {input}",
}

var clsIntroL2 = []string{
	"You are a classifier for {company}'s {dept} team. Assign the {kind} below to one of these labels: {labels}.\n\n\"{input}\"",
	"Read the following {kind} and decide which label fits best. Labels: {labels}.\n\n---\n{input}\n---",
	"Classify the {kind} from a {industry} customer into one of: {labels}.\nText: {input}",
	"Here is a {kind} we received this {weekday}:\n\"{input}\"\nWhat is the right label? Choose from {labels}.",
	"Route this {kind} to the right queue ({labels}).\n\n{input}",
	"Please categorise the following {kind} for our {product} inbox. Allowed labels: {labels}.\n\n{input}",
	"Label the {kind} below. The possible labels are {labelsOr}.\n{input}",
}

var clsIntroL3 = []string{
	"You triage {kind}s for {company}, a {industry} company. Labels and definitions:\n{defs}\n\n{kind}:\n\"\"\"\n{input}\n\"\"\"",
	"Assign one or more of the following labels to the {kind} below.\n{defs}\n\nText: {input}",
	"Classify the {kind} below using this guide:\n{defs}\n\n{input}",
	"As a {dept} analyst at {company}, label the following {kind}. Definitions:\n{defs}\n\nInput:\n{input}",
	"Our {product} team needs this {kind} labelled for a weekly report. Use the taxonomy:\n{defs}\n\n>>> {input}",
}

var clsIntroL4 = []string{
	"System: you are the {kind} classification service for {company} ({industry}). Follow the labelling guide exactly.\n\nLabelling guide:\n{defs}\n\nExamples:\n{examples}\n\nNow classify:\n\"\"\"\n{input}\n\"\"\"",
	"We need a careful multi-label annotation of a {kind} for a compliance audit at {company}. Taxonomy:\n{defs}\n\nAnnotated examples:\n{examples}\n\nText to annotate:\n{input}",
	"Annotate the {kind} below for the {dept} quality review. Read the definitions carefully, since several labels overlap.\n{defs}\n\nReference examples:\n{examples}\n\n---\n{input}\n---",
	"You will label a {kind} that may contain several intents, quoted replies and mixed languages. Guide:\n{defs}\n\nWorked examples:\n{examples}\n\nItem:\n{input}",
}

var clsEasyConstraints = []string{
	"Answer with the label only.",
	"Reply in lowercase.",
	"One word answer please.",
	"No explanation needed.",
	"Just the label.",
	"Output the label on a single line.",
}

var clsHardConstraints = []string{
	"Respond in JSON with keys \"label\" and \"confidence\" (a number between 0 and 1).",
	"If more than one label applies, return all of them as a comma-separated list, ordered by relevance.",
	"If the text is sarcastic, classify the intended meaning, not the literal words.",
	"If the message mentions a refund, use the billing-related label unless it also reports an outage, in which case prefer the technical label.",
	"Give a one-sentence justification after the label.",
	"Handle edge cases: empty text, mixed languages, or text that only contains emojis must be labelled \"other\" or the closest fallback.",
	"Do not use any label that is not in the list.",
	"Use exactly the spelling of the labels given.",
	"If you are less than {pct} confident, answer \"uncertain\" instead.",
	"Return the answer in exactly the format LABEL|CONFIDENCE|REASON.",
	"The text may contain quoted replies from earlier emails; classify only the newest message.",
	"Also flag whether the customer is at risk of churning (yes/no) and justify it in at most {small} words.",
	"Rank the top two labels and explain why the second one is less likely.",
	"If the text is in a language other than English, translate it first, then classify the translation, and report both.",
	"When two labels are equally likely, prefer the one with the higher business impact, unless the customer is on the Free plan.",
	"Extract the product name and any order number as well, as separate JSON fields; use null when absent.",
}

func (f *filler) classification(level int) string {
	fam := clsFamilies[f.rng.IntN(len(clsFamilies))]
	nLabels := []int{3, 4, 6, 8}[level-1]
	labelIdx := f.rng.Perm(len(fam.labels))
	if nLabels > len(labelIdx) {
		nLabels = len(labelIdx)
	}
	labelIdx = labelIdx[:nLabels]
	names := make([]string, nLabels)
	for i, j := range labelIdx {
		names[i] = fam.labels[j].name
	}

	// The input: sentences of the true label, plus at higher levels some of
	// another label to make it ambiguous.
	nSent := []int{1, f.between(1, 2), f.between(2, 4), f.between(3, 6)}[level-1]
	main := fam.labels[labelIdx[0]]
	var sents []string
	for i := 0; i < nSent; i++ {
		src := main
		if level >= 3 && i > 0 && f.chance(0.4) {
			src = fam.labels[labelIdx[1+f.rng.IntN(nLabels-1)]]
		}
		if s := f.expand(f.pick(src.lines)); !slices.Contains(sents, s) {
			sents = append(sents, s)
		}
	}
	input := strings.Join(sents, " ")
	if level >= 3 && f.chance(0.3) {
		input = f.expand(f.pick([]string{"Hi team,\n", "Hello,\n", "Dear {company} support,\n", "To whom it may concern,\n"})) +
			input + f.expand(f.pick([]string{"\n\nThanks, {first}", "\n\nBest regards,\n{person}", "\n\n> On {date}, {person} wrote:\n> Following up on order {order}."}))
	}

	tpl := f.intro(taskStyles[TaskClassification], level)
	var defs, examples []string
	for _, j := range labelIdx {
		defs = append(defs, fmt.Sprintf("- %s: %s", fam.labels[j].name, fam.labels[j].def))
	}
	for _, j := range f.rng.Perm(nLabels)[:min(nLabels, f.between(2, 4))] {
		l := fam.labels[labelIdx[j]]
		examples = append(examples, fmt.Sprintf("Text: %q -> %s", f.expand(f.pick(l.lines)), l.name))
	}
	// Expand the template's own placeholders before inserting the input,
	// which must not be scanned again.
	text := fillSlots(f.expand(tpl),
		"kind", fam.kind,
		"labelsOr", joinOr(names, "or"),
		"labels", strings.Join(names, ", "),
		"defs", strings.Join(defs, "\n"),
		"examples", strings.Join(examples, "\n"),
		"input", input,
	)

	return f.withConstraints(text, f.constraints(taskStyles[TaskClassification], level))
}
