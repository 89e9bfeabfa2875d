package synthetic

// taskStyle is how one task words its requests at each difficulty level: the
// opening templates it picks from, and its easy and hard constraints and how
// many of them it adds. The six generators share the one recipe; what
// differs between tasks is only the text and the numbers of taskStyles.
type taskStyle struct {
	intros [4][]string // opening templates of levels 1 to 4
	easy   []string    // constraints of the easy levels
	hard   []string    // constraints that make a request harder
	mix    constraintMix
}

// constraintMix says how many constraints a request gets at each level.
type constraintMix struct {
	easy1 float64 // level 1: chance of one easy constraint
	easy2 [2]int  // level 2: how many easy constraints, a range
	hard2 float64 // level 2: chance of one more, hard constraint
	hard3 [2]int  // level 3: how many hard constraints, a range
	hard4 [2]int  // level 4: how many hard constraints, a range
}

// taskStyles is the style of each task. Classification alone gives every
// level-2 request exactly one easy constraint.
var taskStyles = map[string]*taskStyle{
	TaskClassification: {[4][]string{clsIntroL1, clsIntroL2, clsIntroL3, clsIntroL4}, clsEasyConstraints, clsHardConstraints,
		constraintMix{0.4, [2]int{1, 1}, 0.3, [2]int{1, 3}, [2]int{3, 5}}},
	TaskSummarization: {[4][]string{sumIntroL1, sumIntroL2, sumIntroL3, sumIntroL4}, sumEasyConstraints, sumHardConstraints,
		constraintMix{0.3, [2]int{0, 1}, 0.3, [2]int{2, 3}, [2]int{3, 6}}},
	TaskRAG: {[4][]string{ragIntroL1, ragIntroL2, ragIntroL3, ragIntroL4}, ragEasyConstraints, ragHardConstraints,
		constraintMix{0.3, [2]int{0, 1}, 0.3, [2]int{1, 3}, [2]int{3, 5}}},
	TaskCode: {[4][]string{codeIntroL1, codeIntroL2, codeIntroL3, codeIntroL4}, codeEasyConstraints, codeHardConstraints,
		constraintMix{0.4, [2]int{0, 1}, 0.4, [2]int{2, 3}, [2]int{3, 6}}},
	TaskReasoning: {[4][]string{reasonL1, reasonL2, reasonL3, reasonL4}, reasonEasyConstraints, reasonHardConstraints,
		constraintMix{0.5, [2]int{0, 1}, 0.3, [2]int{1, 2}, [2]int{2, 4}}},
	TaskCreative: {[4][]string{creativeL1, creativeL2, creativeL3, creativeL4}, creativeEasyConstraints, creativeHardConstraints,
		constraintMix{0.3, [2]int{0, 1}, 0.3, [2]int{1, 2}, [2]int{2, 4}}},
}

// intro picks an opening template of the level.
func (f *filler) intro(s *taskStyle, level int) string { return f.pick(s.intros[level-1]) }

// constraints draws the constraints of a request of the level, to be
// expanded and laid out by withConstraints.
func (f *filler) constraints(s *taskStyle, level int) []string {
	m := &s.mix
	switch level {
	case 1:
		if f.chance(m.easy1) {
			return f.pickN(s.easy, 1)
		}
		return nil
	case 2:
		cons := f.pickN(s.easy, f.count(m.easy2))
		if f.chance(m.hard2) {
			cons = append(cons, f.pickN(s.hard, 1)...)
		}
		return cons
	case 3:
		return f.pickN(s.hard, f.count(m.hard3))
	default:
		return f.pickN(s.hard, f.count(m.hard4))
	}
}

// count returns a uniform integer in the range r. A range of one number is
// that number without a draw, so a fixed count leaves the random stream (and
// with it every later prompt of the seed) as it is.
func (f *filler) count(r [2]int) int {
	if r[0] == r[1] {
		return r[0]
	}
	return f.between(r[0], r[1])
}

// withConstraints appends requirements to a prompt, laid out in one of a few
// styles.
func (f *filler) withConstraints(text string, cons []string) string {
	if len(cons) == 0 {
		return text
	}
	for i, c := range cons {
		cons[i] = f.expand(c)
	}
	if len(cons) == 1 {
		sep := f.pick([]string{"\n", "\n\n", " "})
		return text + sep + cons[0]
	}
	head := f.pick([]string{"Requirements:", "Rules:", "Constraints:", "Instructions:", "Please note:", "Make sure that you follow these rules:"})
	return text + "\n\n" + head + "\n" + f.list(cons)
}
