package synthetic

import (
	"fmt"
	"testing"
	"time"
	"sort"
)

func TestReport(t *testing.T) {
	t0 := time.Now()
	w, tr, err := generate(Config{Seed: 1, Prompts: 4000})
	el := time.Since(t0)
	if err != nil { t.Fatal(err) }
	fmt.Println("gen time", el)
	names := w.Catalogue.Names()
	nm := len(names)
	type k struct{ m, t int }
	acc := map[k]float64{}; cnt := map[int]float64{}
	lvl := map[k]float64{}; lcnt := map[int]float64{}
	clsL1 := map[int]float64{}; clsL1n := 0.0
	tot := make([]float64, nm); cost := make([]float64, nm)
	for i := range w.Prompts {
		cnt[tr[i].task]++
		lcnt[tr[i].level]++
		if tr[i].task == 0 && tr[i].level == 1 { clsL1n++ }
		for m := 0; m < nm; m++ {
			o := w.Outcomes[i*nm+m]
			acc[k{m, tr[i].task}] += o.Quality
			lvl[k{m, tr[i].level}] += o.Quality
			tot[m] += o.Quality
			cost[m] += o.CostUSD
			if tr[i].task == 0 && tr[i].level == 1 { clsL1[m] += o.Quality }
		}
	}
	fmt.Printf("%-20s %6s", "model", "all")
	for _, ts := range taskMix { fmt.Printf(" %8.8s", ts.name) }
	fmt.Printf(" | L1     L2     L3     L4   | clsL1  cost$\n")
	for m := 0; m < nm; m++ {
		fmt.Printf("%-20s %6.3f", names[m], tot[m]/4000)
		for ti := range taskMix { fmt.Printf(" %8.3f", acc[k{m, ti}]/cnt[ti]) }
		fmt.Printf(" |")
		for l := 1; l <= 4; l++ { fmt.Printf(" %.3f", lvl[k{m, l}]/lcnt[l]) }
		fmt.Printf(" | %.3f %.2f\n", clsL1[m]/clsL1n, cost[m])
	}
	for ti := range taskMix { fmt.Printf("%s n=%v ", taskMix[ti].name, cnt[ti]) }
	fmt.Println()
	// lengths per task
	lens := map[string][]int{}
	for _, p := range w.Prompts { lens[p.Task] = append(lens[p.Task], len(p.Prompt)) }
	for tname, ls := range lens { sort.Ints(ls); fmt.Printf("%s len min %d p50 %d p90 %d max %d\n", tname, ls[0], ls[len(ls)/2], ls[len(ls)*9/10], ls[len(ls)-1]) }
	// output token means per task per model
	for ti := range taskMix {
		fmt.Printf("%-15s out:", taskMix[ti].name)
		for m := 0; m < nm; m++ {
			s, c := 0.0, 0.0
			for i := range w.Prompts { if tr[i].task == ti { s += float64(w.Outcomes[i*nm+m].OutputTokens); c++ } }
			fmt.Printf(" %6.0f", s/c)
		}
		fmt.Println()
	}
	distinct := map[string]bool{}
	for _, p := range w.Prompts { distinct[p.Prompt] = true }
	fmt.Println("distinct", len(distinct))
}
