package synthetic

import "strings"

var creativeL1 = []string{
	"Write a short slogan for {product}.",
	"Write a haiku about {topic}.",
	"Give me a catchy tagline for a {industry} startup.",
	"Write a limerick about {subject}.",
	"Write a two-line rhyme about {topic}.",
	"Suggest a name and a one-line pitch for a {city} coffee shop.",
	"Write a fun fact-style tweet about {topic}.",
	"Write a short birthday message for {first}.",
}

var creativeL2 = []string{
	"Write a four-line poem about {subject}, in a {tone} tone.",
	"Write a 150-word product description for {product}, aimed at the {industry} market.",
	"Write a short story (about 200 words) about {subject}.",
	"Write a toast for {person}'s retirement party after {n} years at {company}.",
	"Write the chorus of a song about {topic}.",
	"Write a short fable featuring {subject} with a moral at the end.",
	"Write a LinkedIn post announcing that {company} is opening an office in {city}.",
}

var creativeL3 = []string{
	"Write a short story of about {n}0 words about {subject}. It must include the words \"{word}\", \"{word}\" and \"{word}\", and be told in the second person.",
	"Write a poem about {topic} with an ABAB rhyme scheme, {small} stanzas, and a change of mood in the last stanza.",
	"Write a dialogue between {first} and {first2} about {topic}, where neither character says the topic's name explicitly.",
	"Write a product launch story for {product} told from the point of view of the product itself, in a {tone} tone, ending with a twist.",
	"Write a short screenplay scene set in {city} involving {subject}, with stage directions and at most {small} characters.",
	"Write an advertising script for {product} that includes a joke, a statistic ({pct} of customers ...) and a call to action.",
}

var creativeL4 = []string{
	"Write a Shakespearean sonnet (14 lines, iambic pentameter, rhyme scheme ABAB CDCD EFEF GG) about {subject}. The first letters of the lines must spell a 14-letter phrase of your choice, and the volta must come at line 9.",
	"Write a story in exactly {n}0 words about {subject}, without using the letter \"e\", told backwards in time, with each paragraph starting with the last word of the previous one.",
	"Write a villanelle about {topic}, following the form strictly (19 lines, two refrains, ABA rhyme), in a formal register, and include the words \"{word}\" and \"{word}\" in the refrains.",
	"Write three versions of a short story about {subject}: one as a noir detective piece, one as a children's bedtime story, and one as a formal news report. Each must be exactly {small} sentences and share the same plot points.",
	"Write a nested story: a narrator in {city} tells a story about {subject}, inside which a character tells a fable; each layer must mirror the theme of {topic} and have its own distinct voice.",
	"Write an acrostic poem where the first letters spell {product} and every line has exactly {small} syllables, in the style of a {tone} ode.",
}

var creativeEasyConstraints = []string{
	"Keep it light.",
	"Make it funny.",
	"Keep it under {n}0 words.",
	"Use simple words.",
}

var creativeHardConstraints = []string{
	"Do not use any clichés such as \"once upon a time\" or \"in a world\".",
	"Every sentence must be at most {small}0 words long.",
	"Include exactly {small} similes and no metaphors.",
	"Use a formal, archaic register throughout.",
	"Avoid the words \"love\", \"heart\" and \"dream\".",
	"End with a line that echoes the first line but changes its meaning.",
	"Make the structure symmetrical: the second half must mirror the first.",
	"The piece must work both for adults and children, with a hidden second meaning.",
	"Explain your formal choices in a short note after the piece.",
}

func (f *filler) creative(level int) string {
	tpl := f.intro(taskStyles[TaskCreative], level)
	cons := f.constraints(taskStyles[TaskCreative], level)
	text := f.expand(tpl)
	if opener := f.maybe(0.3, []string{
		"For our {company} newsletter: ",
		"I'm running a writing workshop in {city}. ",
		"Creative task: ",
		"For a {dept} team-building event, ",
		"Please help me with this: ",
	}); opener != "" {
		text = opener + lowerFirstIf(text)
	}
	return f.withConstraints(text, cons)
}

// lowerFirstIf lower-cases the first letter of s when it starts with
// "Write", so that a prefix reads naturally.
func lowerFirstIf(s string) string {
	if strings.HasPrefix(s, "Write") {
		return "w" + s[1:]
	}
	return s
}
