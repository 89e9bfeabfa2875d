package synthetic

// Reasoning problems by level. Each is a template filled with fresh numbers.
var reasonL1 = []string{
	"A shop sells notebooks at ${small} each. How much do {n} notebooks cost?",
	"A train travels at {n}0 km/h for {small} hours. How far does it go?",
	"If a recipe for {small} people needs {n}0 g of flour, how much flour is needed for {n} people?",
	"{first} has {n} apples and gives away {small}. How many are left?",
	"What is {big} divided by {small}, rounded to the nearest whole number?",
	"A meeting starts at {time} and lasts {n} minutes. When does it end?",
	"Convert {n} miles to kilometres.",
	"What is {pct} of {big}?",
	"A box holds {small} dozen eggs. How many eggs are in {n} boxes?",
	"If today is {weekday}, what day will it be in {n} days?",
}

var reasonL2 = []string{
	"A jacket costs ${n}0. It is discounted by {pct}, then {small}% sales tax is added. What is the final price?",
	"Two pipes fill a tank in {small} and {n} hours respectively. How long do they take together?",
	"A car drives {n}0 km at {n} km/h and returns at {n} km/h. What is the average speed for the round trip?",
	"You invest ${big} at {small}% annual interest, compounded yearly. How much do you have after {small} years?",
	"What is the probability of rolling a total of {small} with two fair dice?",
	"A team closes {n} tickets per day. The backlog is {big} tickets and grows by {small} per day. How many days until it is empty?",
	"{company} had {big} users in {month} and grew {pct} per month. How many users after {small} months?",
	"A warehouse ships {n} orders per hour for {small} hours, then {n} orders per hour for {small} hours. What is the hourly average?",
	"If {small} workers build a wall in {n} days, how long do {n} workers take, assuming equal speed?",
}

var reasonL3 = []string{
	"Solve step by step: {first} is {small} times as old as her son. In {n} years she will be twice as old as him. How old are they now?",
	"A bag has {small} red, {n} blue and {small} green marbles. You draw {small} without replacement. What is the probability that exactly two are blue? Show your reasoning step by step.",
	"Five colleagues ({first}, {first2}, {first3}, Ana and Bo) must be scheduled into {small} meeting rooms. {first} cannot share a room with {first2}; Ana must be in the same room as Bo; {first3} needs a room alone on {weekday}. List all valid assignments and explain.",
	"Solve the system: {small}x + {n}y = {big}, {n}x - {small}y = {n}. Show each step.",
	"A project has tasks A ({small} days), B ({n} days, after A), C ({small} days, after A), D ({n} days, after B and C). What is the earliest finish time and which tasks are on the critical path? Think step by step.",
	"Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may draw one fruit from one box. Which box do you choose and how do you relabel all three? Explain why it always works.",
	"A {n}-question test gives +{small} for correct, -1 for wrong and 0 for blank. {first} scored {n} and left {small} blank. How many did she answer correctly? Work it out step by step.",
	"A server handles {n} requests per second with {small} workers. Each request takes {n}0 ms of CPU. What utilisation do you expect, and how many workers are needed to keep utilisation under {pct}?",
	"In how many ways can {small} books be arranged on a shelf if two particular books must not be next to each other? Explain your counting.",
}

var reasonL4 = []string{
	"Prove that for every integer n ≥ 1, the sum 1 + 3 + 5 + ... + (2n - 1) equals n². Give a formal proof by induction, stating the base case, the inductive hypothesis and the inductive step.",
	"Prove that there are infinitely many primes of the form 4k + 3. Be rigorous and justify every step.",
	"Prove or give a counterexample: for all positive integers a, b, if a² divides b² then a divides b.",
	"On an island, knights always tell the truth and knaves always lie. {first} says: \"{first2} is a knave.\" {first2} says: \"{first} and {first3} are of the same kind.\" {first3} says: \"Exactly one of us is a knight.\" Determine who is what, and prove that the solution is unique.",
	"A factory makes products X and Y. X needs {small} h of machining and {small} h of assembly; Y needs {small} h and {n} h. There are {n}0 machining hours and {n}0 assembly hours per week. Profit is ${n} per X and ${n} per Y. Formulate the linear program, solve it, and prove the solution is optimal.",
	"Plan a release for {company}: {n} engineers, {small} teams, and 8 epics with dependencies (E2 after E1, E4 after E2 and E3, E6 after E5, E8 after E4, E6 and E7). Each epic takes between {small} and {n} engineer-weeks. Find a schedule that minimises the finish date under the constraint that no team works on more than two epics at once, and justify why no shorter schedule exists.",
	"Let f(x) = x³ - {small}x² + {n}x - {small}. Find all real roots, prove there are no others, and determine the intervals where f is increasing.",
	"A fair coin is tossed until either HHT or HTT appears. What is the probability that HHT appears first? Derive it formally with a Markov chain and check the result another way.",
	"You have {small}{small} identical-looking coins; one is counterfeit and may be heavier or lighter. With a balance scale and 3 weighings, devise a strategy that finds the coin and whether it is heavier or lighter, and prove that it always works.",
	"Derive a closed form for the expected number of comparisons made by randomised quicksort on n distinct keys, and prove that it is O(n log n).",
}

var reasonEasyConstraints = []string{
	"Give just the number.",
	"Show the calculation.",
	"Explain briefly.",
	"Round to two decimals.",
}

var reasonHardConstraints = []string{
	"Think step by step and number each step.",
	"State every assumption you make explicitly.",
	"Verify the answer by a second, independent method.",
	"Give the final answer on its own line, prefixed with \"Answer:\".",
	"If the problem has no solution, prove that it has none.",
	"Do not skip any algebraic step.",
	"Explain where a common mistake would lead and why it is wrong.",
	"Write the proof in formal mathematical language.",
	"If several answers are possible, list all of them and justify why there are no others.",
	"Present the reasoning as a table first, then as prose.",
	"Check the edge cases n = 0 and n = 1 separately.",
}

func (f *filler) reasoning(level int) string {
	tpl := f.intro(taskStyles[TaskReasoning], level)
	cons := f.constraints(taskStyles[TaskReasoning], level)
	text := f.expand(tpl)
	text = f.maybe(0.35, []string{
		"I'm preparing a {dept} training quiz. ",
		"My kid asked me this and I'm stuck: ",
		"Interview question from {company}: ",
		"Puzzle of the week: ",
		"Homework help: ",
		"For a {industry} planning exercise: ",
	}) + text
	if level >= 3 && f.chance(0.4) {
		text += "\n\n" + f.expand(f.pick([]string{
			"Then generalise the result to {small} variables.",
			"Afterwards, explain how the answer changes if one of the constraints is removed.",
			"Finally, write a short program that checks your answer by brute force for small values.",
			"Compare your answer with the naive estimate of {n} and explain the difference.",
		}))
	}
	return f.withConstraints(text, cons)
}
