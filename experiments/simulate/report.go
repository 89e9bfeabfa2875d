package simulate

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"os"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"switchyard/experiments/figure"
)

// WriteCSV writes one row per strategy and round.
func WriteCSV(path string, res *Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	w := csv.NewWriter(f)
	head := []string{"strategy", "round", "requests", "exploration_rate", "online_quality", "online_cost_usd",
		"test_quality", "test_cost_usd", "full_info_quality", "full_info_cost_usd", "quality_ratio", "cost_ratio", "regret"}
	for _, m := range res.Pool {
		head = append(head, "share_"+m)
	}
	_ = w.Write(head)
	ff := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, r := range res.Rounds {
		row := []string{r.Strategy, strconv.Itoa(r.Round), strconv.Itoa(r.Requests), ff(r.ExplorationRate), ff(r.OnlineQuality),
			ff(r.OnlineCost), ff(r.TestQuality), ff(r.TestCost), ff(res.Reference.Quality), ff(res.Reference.Cost),
			ff(r.QualityRatio), ff(r.CostRatio), ff(r.Regret)}
		for _, m := range res.Pool {
			row = append(row, ff(r.Shares[m]))
		}
		_ = w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("simulate: write %s: %w", path, err)
	}
	return f.Close()
}

// WritePlot writes a PNG with two panels, held-out quality and cost per
// round for each strategy, with the full-information router as a dashed line.
func WritePlot(path string, res *Result) error {
	var names []string
	seen := map[string]bool{}
	for _, r := range res.Rounds {
		if !seen[r.Strategy] {
			seen[r.Strategy] = true
			names = append(names, r.Strategy)
		}
	}
	sort.Strings(names)
	panel := func(title, ylabel string, val func(Round) float64, ref float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "requests served"
		p.Y.Label.Text = ylabel
		p.Legend.Top = false
		p.Legend.Left = false
		maxX := 0.0
		for i, name := range names {
			var xy plotter.XYs
			for _, r := range res.Rounds {
				if r.Strategy == name {
					xy = append(xy, plotter.XY{X: float64(r.Requests), Y: val(r)})
					maxX = max(maxX, float64(r.Requests))
				}
			}
			l, s, err := plotter.NewLinePoints(xy)
			if err != nil {
				return nil, err
			}
			l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
			l.Width = vg.Points(2)
			p.Add(l, s)
			p.Legend.Add(name, l)
		}
		rl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: ref}, {X: maxX, Y: ref}})
		if err != nil {
			return nil, err
		}
		rl.Color = color.Black
		rl.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(rl)
		p.Legend.Add("full information", rl)
		return p, nil
	}
	pq, err := panel("average quality on held-out prompts", "quality", func(r Round) float64 { return r.TestQuality }, res.Reference.Quality)
	if err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	pc, err := panel("average cost on held-out prompts", "USD per request", func(r Round) float64 { return r.TestCost }, res.Reference.Cost)
	if err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	if err := figure.Row(path, 14*vg.Inch, 5*vg.Inch, 6*vg.Millimeter, pq, pc); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}
