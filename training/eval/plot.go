package eval

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotCurves writes a PNG of every router's points and envelope on one fold:
// average cost (log scale) against average quality.
func PlotCurves(f *Fold, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "average cost per request (USD, log scale)"
	p.Y.Label.Text = "average quality"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	i := 0
	var singles plotter.XYs
	var labels []string
	for _, r := range f.Routers {
		if r.Kind == "single" {
			singles = append(singles, plotter.XY{X: r.Points[0].Cost, Y: r.Points[0].Quality})
			labels = append(labels, r.Name)
			continue
		}
		env := make(plotter.XYs, 0, len(r.Envelope)+1)
		for _, pt := range r.Envelope {
			env = append(env, plotter.XY{X: pt.Cost, Y: pt.Quality})
		}
		last := r.Envelope[len(r.Envelope)-1]
		if last.Cost < f.CostRange[1] {
			env = append(env, plotter.XY{X: f.CostRange[1], Y: last.Quality})
		}
		l, err := plotter.NewLine(env)
		if err != nil {
			return fmt.Errorf("plot %s: %w", r.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if r.Kind == "learned" {
			l.Width = vg.Points(3)
		}
		if r.Kind == "oracle" || r.Kind == "mixing" {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (AIQ %.3f)", r.Name, r.AIQ), l)
		if r.Kind != "mixing" && r.Kind != "oracle" {
			pts := make(plotter.XYs, 0, len(r.Points))
			for _, pt := range r.Points {
				pts = append(pts, plotter.XY{X: pt.Cost, Y: pt.Quality})
			}
			s, err := plotter.NewScatter(pts)
			if err != nil {
				return fmt.Errorf("plot %s: %w", r.Name, err)
			}
			s.Color = plotutil.Color(i)
			s.Radius = vg.Points(1.2)
			p.Add(s)
		}
		i++
	}
	if len(singles) > 0 {
		s, err := plotter.NewScatter(singles)
		if err != nil {
			return fmt.Errorf("plot singles: %w", err)
		}
		s.Color = color.Black
		s.Radius = vg.Points(3)
		p.Add(s)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: singles, Labels: labels})
		if err != nil {
			return fmt.Errorf("plot labels: %w", err)
		}
		for k := range lb.TextStyle {
			lb.TextStyle[k].Font.Size = vg.Points(7)
		}
		p.Add(lb)
	}
	if err := p.Save(9*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: save %s: %w", path, err)
	}
	return nil
}

// PlotReliability writes a PNG reliability diagram of the learned router's
// predicted quality per model.
func PlotReliability(f *Fold, path string) error {
	p := plot.New()
	p.Title.Text = "learned router calibration (test part)"
	p.X.Label.Text = "predicted quality"
	p.Y.Label.Text = "observed quality"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Legend.Top = true
	p.Legend.Left = true
	diag, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	diag.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(diag)
	i := 0
	for _, r := range f.Routers {
		if r.Kind != "single" {
			continue
		}
		c, ok := f.Calibration[r.Name]
		if !ok {
			continue
		}
		var xy plotter.XYs
		for _, b := range c.Bins {
			if b.N > 0 {
				xy = append(xy, plotter.XY{X: b.MeanPredicted, Y: b.MeanObserved})
			}
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("reliability %s: %w", r.Name, err)
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		p.Add(l, s)
		p.Legend.Add(fmt.Sprintf("%s (ECE %.3f)", r.Name, c.ECE), l)
		i++
	}
	if err := p.Save(7*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("reliability: save %s: %w", path, err)
	}
	return nil
}
