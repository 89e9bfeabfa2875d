// Package figure writes the experiment and simulation reports' figures:
// gonum plots laid out side by side in one PNG.
package figure

import (
	"bytes"
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"switchyard/datasets"
)

// Row draws the panels left to right on a width × height canvas, padX
// apart, and writes it to path as a PNG (replacing the file at once).
func Row(path string, width, height, padX vg.Length, panels ...*plot.Plot) error {
	if len(panels) == 0 {
		return fmt.Errorf("figure %s: no panels to draw", path)
	}
	img := vgimg.New(width, height)
	pad := 2 * vg.Millimeter
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: padX, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, draw.New(img))
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return fmt.Errorf("figure %s: %w", path, err)
	}
	return datasets.WriteFileAtomic(path, b.Bytes())
}
