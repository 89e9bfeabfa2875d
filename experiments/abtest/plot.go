package abtest

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"switchyard/experiments/figure"
)

// WritePlot writes a PNG with each arm's average quality and cost and their
// 95% intervals.
func WritePlot(path string, rep *Report) error {
	panel := func(title string, m func(Arm) Metric) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		var names []string
		for i, a := range rep.Arms {
			mt := m(a)
			pts := plotter.XYs{{X: float64(i), Y: mt.Mean}}
			errs := plotter.YErrors{{Low: mt.Mean - mt.Lo, High: mt.Hi - mt.Mean}}
			s, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			s.Color = plotutil.Color(i)
			s.Radius = vg.Points(4)
			eb, err := plotter.NewYErrorBars(struct {
				plotter.XYs
				plotter.YErrors
			}{pts, errs})
			if err != nil {
				return nil, err
			}
			eb.Color = plotutil.Color(i)
			eb.LineStyle.Width = vg.Points(2)
			p.Add(s, eb)
			names = append(names, fmt.Sprintf("%s (%d units)", a.Name, a.Units))
		}
		p.NominalX(names...)
		p.X.Min, p.X.Max = -0.5, float64(len(rep.Arms))-0.5
		return p, nil
	}
	pq, err := panel(fmt.Sprintf("%s: average quality, 95%% interval", rep.Experiment), func(a Arm) Metric { return a.Quality })
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	pc, err := panel("average cost per request (USD), 95% interval", func(a Arm) Metric { return a.Cost })
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := figure.Row(path, 12*vg.Inch, 4.5*vg.Inch, 8*vg.Millimeter, pq, pc); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
