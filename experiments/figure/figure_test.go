package figure_test

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"switchyard/experiments/figure"
)

func TestRowWritesAPNGOfTheCanvasSize(t *testing.T) {
	var panels []*plot.Plot
	for range 3 {
		p := plot.New()
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
		require.NoError(t, err)
		p.Add(l)
		panels = append(panels, p)
	}
	path := filepath.Join(t.TempDir(), "row.png")
	require.NoError(t, figure.Row(path, 6*vg.Inch, 2*vg.Inch, 4*vg.Millimeter, panels...))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, 6*96, img.Bounds().Dx(), "96 dots per inch")
	assert.Equal(t, 2*96, img.Bounds().Dy())

	err = figure.Row(filepath.Join(t.TempDir(), "missing", "row.png"), vg.Inch, vg.Inch, 0, panels[0])
	require.ErrorContains(t, err, "missing")
}
